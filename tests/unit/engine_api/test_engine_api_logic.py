"""How the frontend turns engine errors into HTTP statuses."""

from __future__ import annotations


def test_error_statuses_follow_the_error_kind() -> None:
    from shoal.errors import Conflict, Forbidden, InvalidArgument, NotFound, NotModified, ShoalError, Unavailable
    from shoal.plugins.engine_api.server import error_response

    statuses = {
        NotFound("x"): 404, Conflict("x"): 409, InvalidArgument("x"): 400, Forbidden("x"): 403,
        NotModified("x"): 304, Unavailable("no quorum"): 503, ShoalError("x"): 500, RuntimeError("x"): 500,
    }  # fmt: skip
    assert {type(e).__name__: error_response(e).status for e in statuses} == {type(e).__name__: s for e, s in statuses.items()}
