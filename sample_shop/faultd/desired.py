"""What the fault controller wants the replicas to have: the desired faults and client-policy overrides of
the whole stack, each with an absolute expiry. Pure: no I/O, every clock value is passed in.

A fault targets every replica of a service (`replica=None`) or one replica. The set a given replica must
carry is computed from this state (`faults_for`), and a `version` string of that set lets the reconcile
loop tell whether a replica already has it without asking the replica.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from sample_shop.kit.faultspec import Fault
from sample_shop.kit.policy import ClientPolicy


@dataclass(frozen=True)
class DesiredFault:
    service: str
    replica: int | None  # None: every replica of the service, present and future
    fault: Fault

    def applies_to(self, service: str, replica: int) -> bool:
        return self.service == service and (self.replica is None or self.replica == replica)

    def to_dict(self, now: float) -> dict[str, Any]:
        return {"service": self.service, "replica": self.replica, **self.fault.to_dict(now)}


@dataclass(frozen=True)
class DesiredPolicy:
    service: str
    body: dict[str, Any]  # {"profile", "overrides"} as validated; ttl_s is derived from expires_at
    policy: ClientPolicy
    expires_at: float

    def push_body(self, now: float) -> dict[str, Any]:
        """The admin `/policy` body for a replica now: the remaining time as its TTL (at least 1 s)."""
        return {**self.body, "ttl_s": max(1.0, round(self.expires_at - now, 3))}


@dataclass
class DesiredState:
    faults: list[DesiredFault] = field(default_factory=list)
    policies: dict[str, DesiredPolicy] = field(default_factory=dict)

    # ---- faults ----------------------------------------------------------------------------------

    def add_fault(self, service: str, replica: int | None, fault: Fault) -> DesiredFault:
        entry = DesiredFault(service, replica, fault)
        self.faults.append(entry)
        return entry

    def remove_faults(self, service: str | None = None, fault_id: str | None = None) -> list[DesiredFault]:
        """Remove the faults of `service` (all when None), or the one with `fault_id`; return them."""
        removed = [
            f
            for f in self.faults
            if (service is None or f.service == service) and (fault_id is None or f.fault.id == fault_id)
        ]
        self.faults = [f for f in self.faults if f not in removed]
        return removed

    def expire(self, now: float) -> list[DesiredFault]:
        """Forget faults whose expiry has passed (the replicas expire them by themselves too)."""
        due = [f for f in self.faults if f.fault.expires_at <= now]
        if due:
            self.faults = [f for f in self.faults if f.fault.expires_at > now]
        for service, policy in list(self.policies.items()):
            if policy.expires_at <= now:
                del self.policies[service]
        return due

    def faults_for(self, service: str, replica: int, now: float) -> list[Fault]:
        return [f.fault for f in self.faults if f.applies_to(service, replica) and f.fault.expires_at > now]

    def active(self, now: float) -> list[DesiredFault]:
        return [f for f in self.faults if f.fault.expires_at > now]

    # ---- policies --------------------------------------------------------------------------------

    def set_policy(self, service: str, body: dict[str, Any], policy: ClientPolicy, expires_at: float) -> None:
        self.policies[service] = DesiredPolicy(service, body, policy, expires_at)

    def remove_policy(self, service: str | None = None) -> list[str]:
        services = list(self.policies) if service is None else [s for s in self.policies if s == service]
        for name in services:
            del self.policies[name]
        return services

    def policy_for(self, service: str, now: float) -> DesiredPolicy | None:
        policy = self.policies.get(service)
        return policy if policy is not None and policy.expires_at > now else None


def faults_version(faults: list[Fault]) -> str:
    """Identity of a fault set as pushed (ids and expiries): equal versions need no push."""
    text = "|".join(sorted(f"{f.id}@{f.expires_at:.3f}" for f in faults))
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


def policy_version(policy: DesiredPolicy | None) -> str:
    if policy is None:
        return "none"
    text = f"{sorted(policy.body.items())!r}@{policy.expires_at:.3f}"
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


def push_body(faults: list[Fault]) -> dict[str, Any]:
    """The admin `PUT /faults` body: full faults with id and absolute expiry."""
    return {
        "faults": [
            {
                "id": f.id,
                "kind": f.kind,
                "params": dict(f.params),
                "ttl_s": f.spec.ttl_s,
                "expires_at": f.expires_at,
            }
            for f in faults
        ]
    }
