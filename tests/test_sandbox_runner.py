"""The sandbox's Metrica (scripts/stand_in_runner.py), run as its own process as the sandbox
runs it: it serves on the port it is given, knows the demo shop's token, counter, goals and
visitors, processes a goal-based upload after its delay, and stops on SIGTERM."""

import pathlib
import signal
import subprocess
import sys
import time

import pytest

from metrika_core.client import MetrikaClient
from metrika_core.errors import MetrikaAuthError

SCRIPTS = pathlib.Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import stand_in_runner  # noqa: E402 - after the path set-up above

PROCESSING_DELAY = 1.0


def test_runner_serves_the_demo_shop_and_processes_uploads_over_time():
    runner = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPTS / "stand_in_runner.py"),
            "--port",
            "0",
            "--processing-delay",
            str(PROCESSING_DELAY),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = runner.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with MetrikaClient(stand_in_runner.TOKEN, 12345, base_url=url) as client:
            assert client.get_counter()["name"] == "Test shop"
            goals = {
                condition["url"] for goal in client.list_goals() for condition in goal["conditions"]
            }
            assert goals == {
                stand_in_runner.GOAL_IN_PROGRESS,
                stand_in_runner.GOAL_PAID,
                stand_in_runner.GOAL_CANCELLED,
            }
            sold = int(time.time()) - 60
            uploading = client.upload_offline_conversions(
                "ClientId,Target,DateTime\n"
                f"{stand_in_runner.CLIENT_ID},{stand_in_runner.GOAL_PAID},{sold}\n"
                f"1999999999999999999,{stand_in_runner.GOAL_PAID},{sold}\n"
            )
            assert uploading["status"] == "UPLOADED"
            time.sleep(PROCESSING_DELAY + 0.5)
            processed = client.get_offline_uploading(uploading["id"])
        assert processed["status"] == "PROCESSED"
        # The shop's visitor is linked; a ClientID Metrica never saw is not.
        assert processed["linked_quantity"] == 1
        assert processed["user_not_found_quantity"] == 1
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=10) == 0
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        runner.stdout.close()


def test_runner_refuses_another_token():
    stand_in = stand_in_runner.start_stand_in(port=0)
    try:
        with MetrikaClient("not-the-sandbox-token", 12345, base_url=stand_in.url) as client:
            with pytest.raises(MetrikaAuthError):
                client.get_counter()
    finally:
        stand_in.stop()
