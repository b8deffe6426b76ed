"""The sandbox's Metrica: the stand-in the tests use (tests/metrika_stand_in.py), serving on a
fixed or chosen port until stopped, with the demo shop's counter, goals and visitors, and
processing goal-based uploads a while after they arrive, as Metrica does.

Usage: ``python3 scripts/stand_in_runner.py [--port 8079] [--processing-delay 120]``: prints its
address on the first line, serves until Ctrl-C or SIGTERM. Standard library only (no Odoo).
"""

import argparse
import importlib.util
import pathlib
import signal
import sys
import threading

REPO = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_PORT = 8079
# Seconds until the stand-in has processed a goal-based upload (Metrica: up to two hours).
DEFAULT_PROCESSING_DELAY = 120

TOKEN = "sandbox-token"
# The visitors of the shop's site, as Metrica's tag would have given them.
CLIENT_ID = "1628529640459314054"
YCLID = "6754821930114400255"
SECOND_CLIENT_ID = "1701234567123456789"
THIRD_CLIENT_ID = "1712345678901234567"
KNOWN_VISITORS = (CLIENT_ID, YCLID, SECOND_CLIENT_ID, THIRD_CLIENT_ID)
# A click Metrica never saw: its conversion comes back "not linked".
UNKNOWN_YCLID = "9000000000000000001"
# The goals of the goal-based method: created, paid (won), cancelled (lost).
GOAL_IN_PROGRESS = "crm_qualified_lead"
GOAL_PAID = "crm_deal_won"
GOAL_CANCELLED = "crm_deal_lost"


def load_stand_in():
    """tests/metrika_stand_in.py, loaded by file path."""
    module = sys.modules.get("metrika_stand_in")
    if module is None:
        spec = importlib.util.spec_from_file_location(
            "metrika_stand_in", REPO / "tests" / "metrika_stand_in.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["metrika_stand_in"] = module
        spec.loader.exec_module(module)
    return module


def start_stand_in(port=DEFAULT_PORT, processing_delay=DEFAULT_PROCESSING_DELAY):
    """The sandbox's stand-in, started: its default counter (12345, "Test shop", Moscow time)
    with the three goals, knowing the shop's visitors only."""
    module = load_stand_in()
    stand_in = module.MetrikaStandIn(
        token=TOKEN, port=port, offline_processing_delay=processing_delay
    )
    counter = module.DEFAULT_COUNTER_ID
    if GOAL_CANCELLED not in stand_in.action_goal_ids(counter):
        stand_in.add_goal(counter, GOAL_CANCELLED, "CRM: deal lost")
    for identifier in KNOWN_VISITORS:
        stand_in.add_visitor(identifier, counter)
    return stand_in.start()


def serve_until_stopped(stand_in):
    """Block until SIGTERM or Ctrl-C, then stop the stand-in."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        stand_in.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0: a free one")
    parser.add_argument(
        "--processing-delay",
        type=float,
        default=DEFAULT_PROCESSING_DELAY,
        help="seconds until a goal-based upload is processed",
    )
    args = parser.parse_args(argv)
    stand_in = start_stand_in(args.port, args.processing_delay)
    print(stand_in.url, flush=True)
    serve_until_stopped(stand_in)
    return 0


if __name__ == "__main__":
    sys.exit(main())
