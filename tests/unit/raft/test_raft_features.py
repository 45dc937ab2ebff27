"""Behaviour beyond the paper's core rules: limits, flow control, leases, learners, restarts."""

from __future__ import annotations

import random

import pytest
from raft_helpers import Net

from shoal.errors import InvalidArgument
from shoal.plugins.raft.config import RaftConfig
from shoal.plugins.raft.errors import ConfChangeRefused, NotLeader, ProposalDropped, ProposalTooLarge, RaftError
from shoal.plugins.raft.messages import (
    COMMIT_ONLY,
    ConfChange,
    ConfChangeType,
    ConfState,
    Message,
    MessageType,
    Role,
)
from shoal.plugins.raft.node import RaftNode
from shoal.plugins.raft.storage import MemoryStorage

MT = MessageType


def test_oversized_proposal_is_refused_with_a_clear_error() -> None:
    net = Net(3, max_entry_bytes=100, max_bytes_per_msg=1000)
    leader = net.elect(1)
    with pytest.raises(ProposalTooLarge, match="101 bytes exceeds the maximum Raft entry size of 100"):
        leader.propose(b"x" * 101)
    assert isinstance(ProposalTooLarge(1, 0), InvalidArgument)
    leader.propose(b"x" * 100)


def test_proposal_on_follower_names_the_leader() -> None:
    net = Net(3)
    net.elect(2)
    with pytest.raises(NotLeader, match="the leader is node 2") as caught:
        net.nodes[1].propose(b"x")
    assert caught.value.leader == 2


def test_config_is_validated() -> None:
    with pytest.raises(InvalidArgument, match="must fit in max_bytes_per_msg"):
        RaftConfig(id=1, max_entry_bytes=1000, max_bytes_per_msg=1000)
    with pytest.raises(InvalidArgument, match="lease"):
        RaftConfig(id=1, read_mode="lease", check_quorum=False)
    with pytest.raises(InvalidArgument, match="election_tick must be greater"):
        RaftConfig(id=1, election_tick=1, heartbeat_tick=1)


def test_appends_respect_entry_and_byte_limits() -> None:
    net = Net(3, max_entries_per_msg=8, max_bytes_per_msg=1024, max_entry_bytes=300)
    leader = net.elect(1)
    net.isolate(3)
    for i in range(60):
        leader.propose(bytes([i]) * (1 + i * 5 % 300))
    net.run()
    net.heal()
    net.sent.clear()
    net.tick(1, times=leader.config.heartbeat_tick)
    to_3 = [m for m in net.sent if m.type is MT.APP and m.to == 3 and m.entries]
    assert to_3, "the lagging follower was not caught up"
    assert all(len(m.entries) <= 8 and m.size() <= 1024 for m in to_3)
    assert net.nodes[3].log.last_index() == leader.log.last_index()


def test_in_flight_appends_are_bounded_per_follower() -> None:
    net = Net(3, max_inflight_msgs=2, max_entries_per_msg=1)
    leader = net.elect(1)
    leader.propose(b"warm-up")
    net.run()
    assert leader.progress[2].state.value == "replicate"
    net.blocked = {(2, 1)}  # follower 2 receives but its acknowledgments are lost
    net.sent.clear()
    for i in range(10):
        leader.propose(b"%d" % i)
    net.run()
    assert len([m for m in net.sent if m.type is MT.APP and m.to == 2 and m.entries]) == 2
    net.heal()
    net.tick(1, times=leader.config.heartbeat_tick * 4)
    assert net.nodes[2].log.last_index() == leader.log.last_index()


def test_pipelining_streams_without_waiting_for_each_acknowledgment() -> None:
    net = Net(3, max_inflight_msgs=8, max_entries_per_msg=1)
    leader = net.elect(1)
    leader.propose(b"warm-up")
    net.run()
    net.blocked = {(2, 1), (3, 1)}
    net.sent.clear()
    for i in range(5):
        leader.propose(b"%d" % i)
    net.run()
    assert len([m for m in net.sent if m.type is MT.APP and m.to == 2 and m.entries]) == 5


def test_lease_read_is_answered_at_once_and_expires() -> None:
    net = Net(3, check_quorum=True, read_mode="lease")
    leader = net.elect(1)
    net.tick(1, times=leader.config.heartbeat_tick)  # a heartbeat round establishes the lease
    leader.read_index(b"fresh")
    net.drain(1)
    assert [s.context for s in net.read_states[1]] == [b"fresh"]
    net.isolate(1)
    # The lease lasts election_tick - 1 ticks from the heartbeat round: no one can be elected
    # before, since the followers ignore candidates for an election timeout.
    net.tick(1, times=leader.config.election_tick - 3)
    leader.read_index(b"in-lease")
    net.run()
    net.tick(1, times=2)
    leader.read_index(b"expired")
    net.run()
    assert [s.context for s in net.read_states[1]] == [b"fresh", b"in-lease"]  # the last needs a heartbeat round


def test_deposed_leader_cannot_serve_a_stale_lease_read() -> None:
    net = Net(3, check_quorum=True, pre_vote=True, read_mode="lease")
    old = net.elect(1)
    net.tick(1, times=old.config.heartbeat_tick)
    net.isolate(1)
    # Tick everyone until the majority elects a new leader and commits a write.
    for _ in range(10 * old.config.election_tick):
        net.tick()
        new = [n for n in net.nodes.values() if n.role is Role.LEADER and n.id != 1]
        if new:
            break
    [new_leader] = new
    new_leader.propose(b"newer")
    net.run()
    before = len(net.read_states[1])
    if old.role is Role.LEADER:
        old.read_index(b"stale?")
        net.run()
    assert len(net.read_states[1]) == before


def test_restarted_node_withholds_votes_for_an_election_timeout() -> None:
    net = Net(3, check_quorum=True)
    net.elect(1)
    node = net.start(2)  # a crash and restart: volatile state is lost
    node.step(Message(MT.VOTE, to=2, frm=3, term=5, index=99, log_term=5))
    assert node.term == 1
    for _ in range(node.config.election_tick):
        node.tick()
    node.step(Message(MT.VOTE, to=2, frm=3, term=5, index=99, log_term=5))
    assert node.term == 5 and node.vote == 3


def test_restart_recovers_term_vote_and_log() -> None:
    net = Net(3)
    leader = net.elect(1)
    leader.propose(b"x")
    net.run()
    restarted = net.start(1)
    assert (restarted.term, restarted.vote) == (1, 1)
    assert restarted.role is Role.FOLLOWER
    assert restarted.log.last_index() == leader.log.last_index()
    assert restarted.log.committed == leader.log.committed


def test_ready_must_be_advanced_before_the_next() -> None:
    node = RaftNode(RaftConfig(id=1), MemoryStorage(ConfState(voters=(1,))), random.Random(0))
    node.campaign()
    node.ready()
    with pytest.raises(RaftError, match="advance"):
        node.ready()


def test_local_message_types_are_refused_from_peers() -> None:
    node = RaftNode(RaftConfig(id=1), MemoryStorage(ConfState(voters=(1, 2))), random.Random(0))
    with pytest.raises(RaftError, match="local message"):
        node.step(Message(MT.HUP, to=1, frm=2))


def test_single_node_commits_and_reads_alone() -> None:
    net = Net(1)
    leader = net.elect(1)
    leader.propose(b"solo")
    leader.read_index(b"r")
    net.run()
    assert net.data_applied(1) == [b"solo"]
    assert [s.context for s in net.read_states[1]] == [b"r"]


def test_follower_read_index_is_forwarded_to_the_leader() -> None:
    net = Net(3)
    leader = net.elect(1)
    leader.propose(b"x")
    net.run()
    net.nodes[3].read_index(b"via-follower")
    net.run()
    [state] = net.read_states[3]
    assert state.context == b"via-follower" and state.index == leader.log.committed


def test_proposals_are_dropped_during_leadership_transfer() -> None:
    net = Net(3)
    leader = net.elect(1)
    net.isolate(3)
    leader.propose(b"x")
    net.run()
    leader.transfer_leadership(3)  # 3 is behind: the transfer waits for it to catch up
    with pytest.raises(ProposalDropped, match="transferred to node 3"):
        leader.propose(b"y")
    net.tick(1, times=leader.config.election_tick)  # the transfer times out
    leader.propose(b"y")


def test_learner_catches_up_then_is_promoted() -> None:
    net = Net(3)
    leader = net.elect(1)
    for i in range(5):
        leader.propose(b"%d" % i)
    net.run()
    with pytest.raises(ConfChangeRefused, match="add it as a learner first"):
        leader.propose_conf_change(ConfChange(ConfChangeType.ADD_VOTER, 4))
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    net.run()
    assert leader.learners == {4}
    net.add_node(4, ConfState(voters=(1, 2, 3), learners=(4,)))
    net.tick(1, times=leader.config.heartbeat_tick)
    learner = net.nodes[4]
    assert learner.log.last_index() == leader.log.last_index()
    # A learner never campaigns and does not count towards the quorum.
    learner.campaign()
    assert learner.role is Role.FOLLOWER
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_VOTER, 4))
    net.run()
    net.tick(1, times=leader.config.heartbeat_tick)
    assert leader.voters == {1, 2, 3, 4} and learner.voters == {1, 2, 3, 4}
    # Now a quorum is 3 of 4.
    net.isolate(3)
    net.isolate(4)
    _, index = leader.propose(b"needs-three")
    net.run()
    assert leader.log.committed < index


def test_learner_joining_after_compaction_installs_an_older_snapshot() -> None:
    # The snapshot's membership predates the learner; the entries after it add the learner.
    net = Net(3)
    leader = net.elect(1)
    for i in range(3):
        leader.propose(b"%d" % i)
    net.run()
    net.storages[1].create_snapshot(leader.log.applied, leader.conf_state(), b"state")
    net.storages[1].compact(leader.log.applied)
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    net.run()
    net.add_node(4, ConfState(voters=(1, 2, 3)))
    net.tick(1, times=leader.config.heartbeat_tick)
    leader.report_snapshot(4, True)
    net.tick(1, times=2 * leader.config.heartbeat_tick)
    learner = net.nodes[4]
    assert net.storages[4].snapshot().data == b"state"
    assert learner.log.last_index() == leader.log.last_index()
    assert learner.learners == {4}
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_VOTER, 4))
    net.run()
    assert leader.voters == {1, 2, 3, 4}


def test_lagging_learner_is_not_promoted() -> None:
    net = Net(3, max_promotion_lag=2)
    leader = net.elect(1)
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    net.run()
    for i in range(5):
        leader.propose(b"%d" % i)
    net.run()
    with pytest.raises(ConfChangeRefused, match="has not caught up"):
        leader.propose_conf_change(ConfChange(ConfChangeType.ADD_VOTER, 4))


def test_one_membership_change_at_a_time() -> None:
    net = Net(3)
    leader = net.elect(1)
    net.isolate(2)
    net.isolate(3)
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    with pytest.raises(ConfChangeRefused, match="one change at a time"):
        leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 5))


def test_removing_a_voter_shrinks_the_quorum() -> None:
    net = Net(3)
    leader = net.elect(1)
    leader.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 3))
    net.run()
    net.tick(1, times=leader.config.heartbeat_tick)
    assert leader.voters == {1, 2}
    net.isolate(3)
    _, index = leader.propose(b"two-of-two")
    net.run()
    assert leader.log.committed == index
    with pytest.raises(ConfChangeRefused, match="not a member"):
        leader.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 3))


def test_leader_removing_itself_steps_down_and_the_rest_carry_on() -> None:
    net = Net(3)
    leader = net.elect(1)
    leader.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 1))
    net.run()
    assert leader.role is Role.FOLLOWER
    net.tick(1, times=3)  # the removed node never campaigns
    assert leader.role is Role.FOLLOWER
    net.tick(2, times=net.nodes[2].randomized_election_timeout)
    successor = next(n for n in (net.nodes[2], net.nodes[3]) if n.role is Role.LEADER)
    assert successor.voters == {2, 3}


def test_conf_change_encoding_round_trips() -> None:
    change = ConfChange(ConfChangeType.ADD_LEARNER, 2**40, b"addr:7946")
    assert ConfChange.decode(change.encode()) == change


def test_batched_proposals_travel_together() -> None:
    net = Net(3, max_entries_per_msg=64)
    leader = net.elect(1)
    net.sent.clear()
    with pytest.raises(ProposalTooLarge):
        leader.propose_batch([b"ok", b"x" * (leader.config.max_entry_bytes + 1)])
    assert leader.log.last_index() == 1  # all or nothing
    positions = leader.propose_batch([b"%d" % i for i in range(10)])
    assert [index for _, index in positions] == list(range(2, 12))
    net.run()
    carrying = [m for m in net.sent if m.type is MT.APP and m.entries]
    assert len(carrying) == 2 and all(len(m.entries) == 10 for m in carrying)
    assert leader.log.committed == 11


def test_only_acknowledgments_of_known_replication_may_wait() -> None:
    net = Net(3)
    leader = net.elect(1)
    leader.propose(b"x")
    net.run()
    match = leader.progress[2].match
    assert match == leader.log.last_index()

    def ack(**fields: object) -> Message:
        values: dict[str, object] = {"to": 1, "frm": 2, "term": leader.term, "index": match, **fields}
        return Message(MT.APP_RESP, **values)  # type: ignore[arg-type]

    assert leader.acknowledges_nothing_new(ack())  # the answer to a commit-only append
    assert not leader.acknowledges_nothing_new(ack(index=match + 1))  # new replication: commit may move
    assert not leader.acknowledges_nothing_new(ack(reject=True, reject_hint=0))
    assert not leader.acknowledges_nothing_new(ack(term=leader.term + 1))  # the leader must step down
    assert not leader.acknowledges_nothing_new(Message(MT.HEARTBEAT_RESP, to=1, frm=2, term=leader.term))
    assert not net.nodes[2].acknowledges_nothing_new(ack(to=2, frm=3))  # only a leader lets one wait


def test_a_new_commit_index_rides_on_the_next_entries_sent_in_the_same_ready() -> None:
    net = Net(3)
    leader = net.elect(1)
    leader.propose(b"x")
    net.run()  # both followers stream now
    leader.propose(b"y")
    appends = net.drain(1)
    acks = []
    for i in (2, 3):
        for m in appends:
            if m.to == i:
                net.nodes[i].step(m)
        acks += [m for m in net.drain(i) if m.type is MT.APP_RESP]
    assert len(acks) == 2
    for m in acks:  # the acks and a new proposal reach the leader before its next Ready
        leader.step(m)
    leader.propose(b"z")
    out = net.drain(1)
    committed = leader.log.committed
    assert committed == leader.log.last_index() - 1  # "y" is committed, "z" not yet
    for follower in (2, 3):
        appends = [m for m in out if m.type is MT.APP and m.to == follower]
        assert len(appends) == 1, "one append carries both the entry and the commit index"
        assert [e.data for e in appends[0].entries] == [b"z"] and appends[0].commit == committed


def test_followers_do_not_answer_appends_that_only_carry_the_commit_index() -> None:
    net = Net(3)
    leader = net.elect(1)
    leader.propose(b"x")
    net.run()  # both followers stream now
    net.sent.clear()
    leader.propose(b"y")
    net.run()
    last = leader.log.last_index()
    commit_only = [m for m in net.sent if m.type is MT.APP and not m.entries and m.commit == last]
    assert {m.to for m in commit_only} == {2, 3} and all(m.context == COMMIT_ONLY for m in commit_only)
    answers = [m for m in net.sent if m.type is MT.APP_RESP]
    assert len(answers) == 2 and all(m.index == last for m in answers)  # the entry's answers only
    assert all(net.nodes[i].log.committed == last for i in (2, 3))
    # Any other empty append (a probe, say) is answered.
    probe = Message(MT.APP, to=2, frm=1, term=leader.term, index=last, log_term=leader.term, commit=last)
    net.nodes[2].step(probe)
    assert [m.index for m in net.drain(2) if m.type is MT.APP_RESP] == [last]
