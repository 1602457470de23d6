"""What the notifications function needs to run as pods on kind (deploy/base/notifications), checked
without a cluster: the heartbeat its exec probes read, the consumer name that tells pods apart, and the
mail server's refusal to leave loopback unless it runs in a pod."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sample_shop.notifications import heartbeat, mailserver
from sample_shop.notifications.config import FUNCTION, load_notifier_config

REPO = Path(__file__).resolve().parents[2]


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    """The probe exactly as the kubelet runs it: a new Python process."""
    return subprocess.run(
        [sys.executable, "-m", "sample_shop.notifications.heartbeat", *args],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_the_probe_passes_while_the_loop_beats_and_fails_when_it_stops(tmp_path: Path) -> None:
    beat_file = tmp_path / "state" / "heartbeat"
    missing = probe(str(beat_file), "30")
    assert missing.returncode == 1 and "no heartbeat yet" in missing.stderr
    heartbeat.beat(beat_file)  # the first beat creates the file (and its folder)
    assert probe(str(beat_file), "30").returncode == 0
    stale = time.time() - 120
    os.utime(beat_file, (stale, stale))  # a loop stuck for two minutes
    late = probe(str(beat_file), "60")
    assert late.returncode == 1 and "more than 60 s" in late.stderr
    heartbeat.beat(beat_file)
    age = heartbeat.age_s(beat_file)
    assert age is not None and age < 5
    assert probe(str(beat_file), "60").returncode == 0


@pytest.mark.parametrize("args", [[], ["only-a-file"], ["f", "soon"], ["f", "0"], ["f", "1", "extra"]])
def test_the_probe_refuses_bad_arguments(args: list[str]) -> None:
    assert heartbeat.main(args) == 2


def test_the_consumer_is_the_pod_name_when_given(tmp_path: Path) -> None:
    base = {"SHOP_ADMIN_TOKEN": "t", "SHOP_STATE_DIR": str(tmp_path)}
    local = load_notifier_config(base)
    assert local.consumer == f"{FUNCTION}-0-{os.getpid()}" and local.heartbeat_file is None
    pod = load_notifier_config(
        {**base, "SHOP_NOTIFY_CONSUMER": "notifications-6b9f4-q8w2e", "SHOP_NOTIFY_HEARTBEAT_FILE": "/hb"}
    )
    assert pod.consumer == "notifications-6b9f4-q8w2e" and pod.heartbeat_file == Path("/hb")
    assert load_notifier_config({**base, "SHOP_NOTIFY_CONSUMER": "  "}).consumer == local.consumer


def test_the_mail_server_leaves_loopback_only_in_a_pod(capsys: pytest.CaptureFixture[str]) -> None:
    assert mailserver.main(["--host", "0.0.0.0", "--port", "2525", "--maildir", "m"]) == 2
    assert "loopback only" in capsys.readouterr().err
    # with --in-pod the address is accepted; the bad port stops it before anything listens
    assert mailserver.main(["--in-pod", "--host", "0.0.0.0", "--port", "0", "--maildir", "m"]) == 2
    assert "between 1 and 65535" in capsys.readouterr().err
