"""``hfrag serve`` refuses option values it cannot honour with a clean argument error (exit 2, a
message naming the option), never a traceback or a server that misbehaves later."""

from __future__ import annotations

import pytest

from hfrag.cli import main

TIME_OPTIONS = ["--retry-after", "--cold-start", "--latency", "--estimated-time", "--stall-seconds"]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
@pytest.mark.parametrize("option", TIME_OPTIONS)
def test_a_time_option_must_be_a_finite_number(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", f"{option}={value}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert option in err
    assert "finite" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("port", ["70000", "-1", "65536"])
def test_a_port_out_of_range_is_an_argument_error(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--port", port])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--port" in err
    assert "not a TCP port" in err


def test_a_port_leaving_no_room_for_the_other_listeners_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--models", "hash", "--port", "65535"]) == 2
    err = capsys.readouterr().err
    assert "--port 65535" in err
    assert "OverflowError" not in err
