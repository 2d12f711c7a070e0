"""Serve a pushed model and ask it for predictions over REST, as a user would.

    python -m serving.demo --model_name census --model_base_path runs/demo/serving/census \\
        --csv tfmtl/datasets/data/census/test.csv.gz --rows 5

Starts ``python -m serving`` on 127.0.0.1 (a free port), waits until the model
is AVAILABLE, reads the signature's input names from the metadata endpoint,
sends the first ``--rows`` rows of the CSV (those columns only, as JSON
instances) to ``:predict``, prints each prediction, and shuts the server down.
Uses the REST API alone: no TensorFlow and no tfmtl model code in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pandas as pd

from serving.client import ServingClient, ServingClientError
from tfmtl.logs import log_tail  # imports no TensorFlow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_available(client: ServingClient, model: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode} before {model} was available")
        try:
            states = [v["state"] for v in client.status(model)["model_version_status"]]
            if "AVAILABLE" in states:
                return
        except ServingClientError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{model} was not AVAILABLE after {timeout:.0f}s")


def input_names(metadata: dict, signature: str) -> list[str]:
    return sorted(metadata["metadata"]["signature_def"]["signature_def"][signature]["inputs"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name", default="census")
    parser.add_argument("--model_base_path", required=True)
    parser.add_argument("--csv", required=True, help="rows to send (extra columns are left out)")
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--show", nargs="*", default=["income", "marital_stat"],
                        help="CSV columns printed beside each prediction (e.g. the true labels)")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--server_log", help="write the server's output to this file instead of the terminal")
    args = parser.parse_args(argv)

    port = free_port()
    log = open_log(args.server_log)
    server = subprocess.Popen([sys.executable, "-m", "serving", f"--model_name={args.model_name}",
                               f"--model_base_path={os.path.abspath(args.model_base_path)}",
                               f"--rest_api_port={port}", "--rest_api_host=127.0.0.1",
                               f"--port={free_port()}"],  # gRPC on a free port too (TF Serving's default is 8500)
                              stdout=log, stderr=subprocess.STDOUT if log else None)
    if log:
        print(f"server log: {args.server_log}")
    try:
        with ServingClient(f"http://127.0.0.1:{port}", timeout=30.0) as client:
            wait_available(client, args.model_name, server, args.timeout)
            signature = "serving_default"
            names = input_names(client.metadata(args.model_name), signature)
            rows = pd.read_csv(args.csv, skipinitialspace=True, nrows=args.rows)
            missing = [n for n in names if n not in rows.columns]
            if missing:
                raise SystemExit(f"the CSV lacks the model's input column(s) {missing}")
            instances = json.loads(rows[names].to_json(orient="records"))
            print(f"POST http://127.0.0.1:{port}/v1/models/{args.model_name}:predict with {len(instances)} "
                  f"instances of {len(names)} features")
            predictions = client.predict(args.model_name, instances)
            shown = [c for c in args.show if c in rows.columns]
            for i, prediction in enumerate(predictions):
                context = ", ".join(f"{c}={rows[c].iloc[i]!r}" for c in shown)
                values = prediction if isinstance(prediction, dict) else {"output": prediction}
                print(f"  row {i}: " + ", ".join(f"{k}={float(v):.4f}" for k, v in values.items())
                      + (f"   ({context})" if context else ""))
    except BaseException:
        if log:
            log.flush()
            print(f"--- last lines of the server log ---\n{log_tail(args.server_log)}", file=sys.stderr)
        raise
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if log:
            log.close()
    return 0


def open_log(path: str | None):
    """The server's log file (appended to), or None for the terminal."""
    if not path:
        return None
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return open(path, "ab")


if __name__ == "__main__":
    sys.exit(main())
