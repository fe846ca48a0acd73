"""Policy-gate overhead per action: ``PolicyGate`` (and with its audit log) vs ``AllowAll``.

Runs a mixed stream of actions (the red-team set's attacks and ordinary clicks, keys, typing)
through each gate and prints JSON with median microseconds per check and the ratio to the
``AllowAll`` baseline measured in the same run. The audited variant writes to a temp file
with and without fsync (fsync dominates; it is per entry by design).

    python bench/policy_gate.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from agentcorp.policy import AllowAll, AuditedGate, AuditLog, GateContext, PolicyGate
from agentcorp.policy.base import ActionGate
from agentcorp.policy.config import secrets_from_spec
from agentcorp.policy.secrets import SecretVault
from agentcorp.types import Action

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.policy.redteam import APP_URL, ATTACKS, ENV, POLICY, SECRETS

ORDINARY = [
    Action("click", x=100, y=200, target="Save"),
    Action("key", keys="ctrl+s"),
    Action("type", text="Invoice 2024-117 paid in full."),
    Action("scroll", x=10, y=10, dy=3),
    Action("open_url", url="http://localhost:8000/records?page=3"),
]


def _stream() -> list[tuple[Action, GateContext]]:
    out = []
    for a in ATTACKS:
        ctx = GateContext("bench", "clerk", "bo", "model", **{"url": APP_URL, **a.ctx})
        out.append((a.action, ctx))
    base = GateContext("bench", "clerk", "bo", "model", url=APP_URL)
    out += [(a, base) for a in ORDINARY] * 4
    return out


def _median_us(gate: ActionGate, stream: list[tuple[Action, GateContext]], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        for action, ctx in stream:
            gate.check(action, ctx)
        samples.append((time.perf_counter() - t) / len(stream) * 1e6)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    stream = _stream()
    vault = SecretVault.from_env(secrets_from_spec(SECRETS), ENV)
    policy = PolicyGate(POLICY, vault)
    baseline = _median_us(AllowAll(), stream, args.rounds)
    gate_us = _median_us(policy, stream, args.rounds)
    with tempfile.TemporaryDirectory() as d:
        nosync = AuditedGate(
            PolicyGate(POLICY, vault),
            AuditLog(Path(d) / "a.jsonl", redactor=vault.redactor(), fsync=False),
        )
        audited_us = _median_us(nosync, stream, max(1, args.rounds // 10))
        synced = AuditedGate(
            PolicyGate(POLICY, vault), AuditLog(Path(d) / "b.jsonl", redactor=vault.redactor())
        )
        fsync_us = _median_us(synced, stream, max(1, args.rounds // 50))
    print(
        json.dumps(
            {
                "actions_per_round": len(stream),
                "allow_all_us_p50": round(baseline, 2),
                "policy_gate_us_p50": round(gate_us, 2),
                "policy_gate_vs_allow_all": round(gate_us / baseline, 1),
                "audited_gate_us_p50": round(audited_us, 2),
                "audited_gate_fsync_us_p50": round(fsync_us, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
