"""Tests that check the rules of the Raft paper, each citing the section it checks.

References: Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm
(Extended Version)", 2014 (cited as §N), and Ongaro's PhD thesis "Consensus: Bridging Theory
and Practice", 2014 (cited as thesis §N). Quotations are short excerpts.
"""

from __future__ import annotations

import random

import pytest
from raft_helpers import Net

from shoal.plugins.raft.config import RaftConfig
from shoal.plugins.raft.messages import Entry, Message, MessageType, Role
from shoal.plugins.raft.node import RaftNode
from shoal.plugins.raft.storage import MemoryStorage

MT = MessageType


def sent_of(net: Net, kind: MessageType) -> list[Message]:
    return [m for m in net.sent if m.type is kind]


def test_higher_term_turns_leader_into_follower() -> None:
    """§5.1: "If a candidate or leader discovers that its term is out of date, it immediately
    reverts to follower state."
    """
    net = Net(3)
    leader = net.elect(1)
    leader.step(Message(MT.HEARTBEAT, to=1, frm=2, term=leader.term + 1))
    assert leader.role is Role.FOLLOWER
    assert leader.term == 2
    assert leader.lead == 2


def test_request_with_stale_term_is_rejected() -> None:
    """§5.1: "If a server receives a request with a stale term number, it rejects the request." """
    net = Net(3)
    net.elect(1)
    net.elect(2)
    follower = net.nodes[3]
    before = follower.log.last_index()
    follower.step(Message(MT.APP, to=3, frm=1, term=1, index=before, log_term=2,
                          entries=(Entry(1, before + 1, b"stale"),)))
    assert follower.log.last_index() == before
    assert follower.lead == 2


def test_follower_starts_election_after_election_timeout() -> None:
    """§5.2: "If a follower receives no communication over a period of time called the election
    timeout, then it assumes there is no viable leader and begins an election": it increments
    its term, votes for itself and asks every other server for its vote.
    """
    net = Net(3)
    net.isolate(1)
    node = net.nodes[1]
    for _ in range(2 * node.config.election_tick):
        net.tick(1)
    assert node.role is Role.CANDIDATE
    assert node.term == 1 and node.vote == 1
    assert {m.to for m in net.sent if m.type is MT.VOTE} == {2, 3}


def test_election_timeouts_are_randomized() -> None:
    """§5.2: "Raft uses randomized election timeouts ... chosen randomly from a fixed interval." """
    seen = set()
    for seed in range(50):
        node = RaftNode(RaftConfig(id=1, election_tick=10), MemoryStorage(), random.Random(seed))
        assert 10 <= node.randomized_election_timeout < 20
        seen.add(node.randomized_election_timeout)
    assert len(seen) > 5


def test_leader_sends_heartbeats() -> None:
    """§5.2: "Leaders send periodic heartbeats ... to all followers in order to maintain their
    authority."
    """
    net = Net(3, heartbeat_tick=2)
    net.elect(1)
    net.sent.clear()
    net.tick(1, times=2)
    assert {m.to for m in sent_of(net, MT.HEARTBEAT)} == {2, 3}


def test_candidate_wins_with_majority() -> None:
    """§5.2: "A candidate wins an election if it receives votes from a majority of the servers
    in the full cluster for the same term."
    """
    net = Net(5)
    net.isolate(4)
    net.isolate(5)
    assert net.elect(1).term == 1


def test_candidate_without_majority_does_not_win() -> None:
    """§5.2: with votes from only a minority the candidate stays a candidate (and times out)."""
    net = Net(5)
    for node_id in (3, 4, 5):
        net.isolate(node_id)
    net.nodes[1].campaign()
    net.run()
    assert net.nodes[1].role is Role.CANDIDATE


def test_vote_once_per_term_first_come_first_served() -> None:
    """§5.2: "Each server will vote for at most one candidate in a given term, on a
    first-come-first-served basis."
    """
    net = Net(3)
    voter = net.nodes[3]
    voter.step(Message(MT.VOTE, to=3, frm=1, term=1))
    voter.step(Message(MT.VOTE, to=3, frm=2, term=1))
    voter.step(Message(MT.VOTE, to=3, frm=1, term=1))  # a repeated request gets the same answer
    answers = [(m.to, m.reject) for m in net.drain(3) if m.type is MT.VOTE_RESP]
    assert answers == [(1, False), (2, True), (1, False)]
    assert voter.vote == 1


def test_candidate_returns_to_follower_on_append_from_leader() -> None:
    """§5.2: "If the leader's term ... is at least as large as the candidate's current term, then
    the candidate recognizes the leader as legitimate and returns to follower state."
    """
    net = Net(3)
    net.isolate(3)
    net.nodes[3].campaign()
    net.run()
    candidate = net.nodes[3]
    assert candidate.role is Role.CANDIDATE
    candidate.step(Message(MT.APP, to=3, frm=1, term=candidate.term, index=0, log_term=0))
    assert candidate.role is Role.FOLLOWER and candidate.lead == 1


def test_leader_commits_once_a_majority_stores_the_entry() -> None:
    """§5.3: "A log entry is committed once the leader that created the entry has replicated it
    on a majority of the servers", and followers then apply it in log order.
    """
    net = Net(5)
    leader = net.elect(1)
    net.isolate(4)
    net.isolate(5)
    term, index = leader.propose(b"x")
    net.run()
    assert leader.log.committed == index
    net.tick(1, times=leader.config.heartbeat_tick)  # the next heartbeat carries the commit index
    for node_id in (1, 2, 3):
        assert net.data_applied(node_id) == [b"x"]
    assert net.data_applied(4) == []


def test_no_commit_without_majority() -> None:
    """§5.3: an entry stored on a minority only is not committed."""
    net = Net(5)
    leader = net.elect(1)
    for node_id in (3, 4, 5):
        net.isolate(node_id)
    _, index = leader.propose(b"x")
    net.run()
    assert leader.log.committed < index


def test_follower_rejects_append_whose_previous_entry_does_not_match() -> None:
    """§5.3: "If the follower does not find an entry in its log with the same index and term,
    then it refuses the new entries" (the consistency check behind Log Matching).
    """
    net = Net(3, logs={2: [1, 1]})
    follower = net.nodes[2]
    follower.step(Message(MT.APP, to=2, frm=1, term=2, index=2, log_term=2, entries=(Entry(2, 3, b"x"),)))
    [answer] = net.drain(2)
    assert answer.reject and answer.index == 2
    assert follower.log.last_index() == 2


def test_follower_replaces_conflicting_entries() -> None:
    """§5.3: "If an existing entry conflicts with a new one (same index but different terms),
    delete the existing entry and all that follow it."
    """
    net = Net(3, logs={2: [1, 1, 1]})
    follower = net.nodes[2]
    follower.step(Message(MT.APP, to=2, frm=1, term=2, index=1, log_term=1,
                          entries=(Entry(2, 2, b"a"), Entry(2, 3, b"b"))))
    net.drain(2)
    assert [follower.log.term(i) for i in (1, 2, 3)] == [1, 2, 2]


@pytest.mark.parametrize(
    "follower_log",
    [
        # Figure 7 of the paper: (a) missing entries, (c) extra uncommitted entries, (f) a
        # divergent tail from terms the leader never saw.
        [1, 1, 1, 4, 4, 5, 5, 6, 6],
        [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
        [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
        [],
    ],
)
def test_leader_brings_divergent_follower_in_line(follower_log: list[int]) -> None:
    """§5.3: "the leader handles inconsistencies by forcing the followers' logs to duplicate its
    own", backing nextIndex off until the logs match; with the rejection hint it skips a
    whole conflicting term per round trip.
    """
    leader_log = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
    net = Net(3, logs={1: leader_log, 2: follower_log, 3: leader_log}, terms={1: 7, 2: 7, 3: 7})
    leader = net.elect(1)
    _, index = leader.propose(b"x")
    net.run()
    follower = net.nodes[2]
    assert [follower.log.term(i) for i in range(1, index + 1)] == [leader.log.term(i) for i in range(1, index + 1)]
    rejections = [m for m in net.sent if m.type is MT.APP_RESP and m.frm == 2 and m.reject]
    assert len(rejections) <= 3


@pytest.mark.parametrize(
    ("candidate_last", "granted"),
    [
        ((2, 3), True),  # same last term, same length
        ((2, 4), True),  # same last term, longer
        ((2, 2), False),  # same last term, shorter
        ((3, 1), True),  # higher last term wins even if shorter
        ((1, 5), False),  # lower last term loses even if longer
    ],
)
def test_vote_denied_to_candidate_with_less_up_to_date_log(candidate_last: tuple[int, int], granted: bool) -> None:
    """§5.4.1: "the voter denies its vote if its own log is more up-to-date than that of the
    candidate": later last term wins, and with equal last terms the longer log.
    """
    net = Net(3, logs={3: [1, 2, 2]}, terms={3: 2})
    last_term, last_index = candidate_last
    net.nodes[3].step(Message(MT.VOTE, to=3, frm=1, term=4, index=last_index, log_term=last_term))
    [answer] = [m for m in net.drain(3) if m.type is MT.VOTE_RESP]
    assert answer.reject is not granted


def test_entries_from_previous_terms_are_not_committed_by_counting_replicas() -> None:
    """§5.4.2: "Raft never commits log entries from previous terms by counting replicas. Only
    log entries from the leader's current term are committed by counting replicas."
    """
    # Node 1 holds an entry of term 2 at index 2 that never committed; it then leads term 3.
    net = Net(3, logs={1: [1, 2], 2: [1], 3: [1]}, terms={1: 2, 2: 2, 3: 2})
    leader = net.nodes[1]
    net.blocked = {(1, 2), (1, 3)}  # hold back its appends: we answer by hand below
    leader.campaign()
    net.run()
    for voter in (2, 3):
        leader.step(Message(MT.VOTE_RESP, to=1, frm=voter, term=leader.term))
    assert leader.role is Role.LEADER and leader.term == 3
    # Follower 2 now stores index 2 (term 2): replicated on a majority, yet not committable.
    leader.step(Message(MT.APP_RESP, to=1, frm=2, term=3, index=2))
    assert leader.log.committed == 0
    # Once its own no-op (index 3, term 3) is on a majority, both commit together.
    leader.step(Message(MT.APP_RESP, to=1, frm=2, term=3, index=3))
    assert leader.log.committed == 3


def test_leader_completeness_after_leader_change() -> None:
    """§5.4: "If a log entry is committed in a given term, then that entry will be present in the
    logs of the leaders for all higher-numbered terms."
    """
    net = Net(3)
    leader = net.elect(1)
    _, index = leader.propose(b"committed")
    net.run()
    assert leader.log.committed == index
    net.isolate(1)
    new_leader = net.elect(2)
    assert new_leader.log.term(index) == 1
    assert new_leader.log.slice(index, index + 1)[0].data == b"committed"


def test_prevote_keeps_a_rejoining_node_from_disrupting_the_leader() -> None:
    """Thesis §9.6: with PreVote, "a candidate would first ask other servers whether its log was
    up-to-date enough to get their vote"; a partitioned server that cannot win does not bump
    its term, so it does not depose a working leader when it rejoins.
    """
    net = Net(3, pre_vote=True)
    leader = net.elect(1)
    net.isolate(3)
    lonely = net.nodes[3]
    for _ in range(5 * lonely.config.election_tick):
        net.tick(3)
    assert lonely.role is Role.PRE_CANDIDATE
    assert lonely.term == leader.term
    net.heal()
    net.tick(times=leader.config.heartbeat_tick)
    assert leader.role is Role.LEADER and lonely.lead == 1


def test_without_prevote_a_rejoining_node_disrupts_the_leader() -> None:
    """Thesis §9.6 (the problem PreVote solves): a partitioned server keeps incrementing its term,
    and when it rejoins that term forces the leader to step down.
    """
    net = Net(3)
    leader = net.elect(1)
    net.isolate(3)
    for _ in range(5 * leader.config.election_tick):
        net.tick(3)
    assert net.nodes[3].term > leader.term
    net.heal()
    net.tick(3, times=net.nodes[3].randomized_election_timeout)
    assert leader.role is Role.FOLLOWER


def test_servers_ignore_vote_requests_while_they_hear_from_a_leader() -> None:
    """Thesis §4.2.3: "if a server receives a RequestVote request within the minimum election
    timeout of hearing from a current leader, it does not update its term or grant its vote."
    """
    net = Net(3, check_quorum=True)
    net.elect(1)
    follower = net.nodes[2]
    follower.step(Message(MT.VOTE, to=2, frm=3, term=5, index=10, log_term=5))
    assert follower.term == 1 and follower.vote == 1
    assert not [m for m in net.drain(2) if m.type is MT.VOTE_RESP]


def test_leader_without_quorum_steps_down() -> None:
    """Thesis §6.2: "a leader steps down if an election timeout elapses without a successful
    round of heartbeats to a majority of its cluster" (CheckQuorum).
    """
    net = Net(3, check_quorum=True)
    leader = net.elect(1)
    net.isolate(1)
    for _ in range(2 * leader.config.election_tick):
        net.tick(1)
    assert leader.role is Role.FOLLOWER


def test_read_index_waits_for_a_heartbeat_round() -> None:
    """§8: "a leader must check whether it has been deposed before processing a read-only
    request ... by exchanging heartbeat messages with a majority of the cluster."
    """
    net = Net(3)
    leader = net.elect(1)
    net.isolate(1)
    leader.read_index(b"r1")
    net.run()
    assert net.read_states[1] == []
    net.heal()
    net.tick(1, times=leader.config.heartbeat_tick)
    [state] = net.read_states[1]
    assert state.context == b"r1" and state.index == leader.log.committed


def test_new_leader_serves_reads_only_after_committing_in_its_term() -> None:
    """§8: "a leader must have the latest information on which entries are committed ... Raft
    handles this by having each leader commit a blank no-op entry at the start of its term."
    """
    net = Net(3)
    leader = net.nodes[1]
    net.blocked = {(1, 2), (1, 3)}
    leader.campaign()
    net.run()
    for voter in (2, 3):
        leader.step(Message(MT.VOTE_RESP, to=1, frm=voter, term=1))
    leader.read_index(b"early")
    net.drain(1)
    assert leader.role is Role.LEADER and not net.read_states[1]
    net.heal()
    net.tick(1, times=leader.config.heartbeat_tick)
    assert [s.context for s in net.read_states[1]] == [b"early"]


def test_leadership_transfer() -> None:
    """Thesis §3.10: the leader brings the target's log up to date, then sends it TimeoutNow so it
    starts an election at once and wins it.
    """
    net = Net(3, pre_vote=True, check_quorum=True)
    leader = net.elect(1)
    net.isolate(3)
    leader.propose(b"x")
    net.run()
    net.heal()
    leader.transfer_leadership(3)
    net.run()
    assert net.nodes[3].role is Role.LEADER
    assert leader.role is Role.FOLLOWER and leader.lead == 3


def test_lagging_follower_receives_a_snapshot() -> None:
    """§7: "the leader must occasionally send snapshots to followers that lag behind ... when the
    leader has already discarded the next log entry that it needs to send."
    """
    net = Net(3)
    leader = net.elect(1)
    net.isolate(3)
    for i in range(5):
        leader.propose(b"v%d" % i)
    net.run()
    applied = leader.log.applied
    net.storages[1].create_snapshot(applied, leader.conf_state(), b"state")
    net.storages[1].compact(applied)
    net.heal()
    net.tick(1, times=leader.config.heartbeat_tick)
    assert [m.snapshot.index for m in sent_of(net, MT.SNAP) if m.snapshot] == [applied]
    leader.report_snapshot(3, True)
    net.tick(1, times=leader.config.heartbeat_tick)
    follower = net.nodes[3]
    assert net.storages[3].snapshot().data == b"state"
    assert follower.log.committed == leader.log.committed
    assert leader.status().progress[3][2] == "replicate"
