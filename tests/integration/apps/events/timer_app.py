"""Fixture app: timer-triggered functions for devhost's timer tests.

Each invocation is written to ``$EVENTS_OUT_DIR/<function>/<n>.json`` with ``past_due`` and
``schedule_status`` as the function saw them.
"""

import json
import os
import time
import uuid
from pathlib import Path

import azure.functions as func

app = func.FunctionApp()
OUT = Path(os.environ.get("EVENTS_OUT_DIR", "/tmp/devhost-events"))


def record(function: str, timer: func.TimerRequest) -> None:
    folder = OUT / function
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"past_due": timer.past_due, "schedule_status": timer.schedule_status, "schedule": timer.schedule,
               "kind": type(timer).__name__, "recorded_at": time.time()}
    tmp = folder / f".{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(payload))
    tmp.replace(folder / f"{uuid.uuid4().hex}.json")  # readers never see half a file


@app.timer_trigger(schedule="%HOURLY_SCHEDULE%", arg_name="timer", use_monitor=True)
def hourly(timer: func.TimerRequest) -> None:
    record("hourly", timer)


@app.timer_trigger(schedule="01:00:00", arg_name="timer", run_on_startup=True, use_monitor=False)
async def every_hour_from_startup(timer: func.TimerRequest) -> None:
    record("every_hour_from_startup", timer)
