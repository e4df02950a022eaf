"""Realistic names and sizes for an emulated NetBackup domain, from Faker and a seed.

Faker is called only while a domain is built (pools of words, then names made
from them with the seeded random generator); generating notifications never
calls Faker. The same seed gives the same domain, byte for byte.

Site codes (``nor``, ``lak``) are the first letters of the names Faker composes
US city names from, drawn by the seed: asking Faker for 40 cities cost 10 ms a
domain, most of a 5,000-master load run's start.
"""

from __future__ import annotations

import functools
import random
import threading
from dataclasses import dataclass

from faker import Faker

from emulator.domain.model import Client, Policy, Schedule

DAY = 86_400

#: Client counts by policy type for each environment size: a VMware-heavy
#: estate with physical file servers, a few databases and Windows hosts.
ENVIRONMENTS: dict[str, dict[str, int]] = {
    "small": {"STANDARD": 8, "MS_WINDOWS": 4, "VMWARE": 16, "ORACLE": 1, "MS_SQL_SERVER": 2},
    "medium": {"STANDARD": 60, "MS_WINDOWS": 40, "VMWARE": 180, "ORACLE": 8, "MS_SQL_SERVER": 16},
    "large": {"STANDARD": 500, "MS_WINDOWS": 400, "VMWARE": 1900, "ORACLE": 60, "MS_SQL_SERVER": 140},
}

#: Clients per policy, by policy type (VIP policies select many VMs by query).
_CLIENTS_PER_POLICY = {"VMWARE": 8, "STANDARD": 4, "MS_WINDOWS": 4, "ORACLE": 1, "MS_SQL_SERVER": 2}
#: Median full-backup size in GB and its spread (log-normal sigma), by policy type.
_SIZES_GB = {"VMWARE": (60, 0.9), "STANDARD": (80, 1.0), "MS_WINDOWS": (120, 0.9), "ORACLE": (500, 0.8), "MS_SQL_SERVER": (200, 0.8)}
_ROLES = {
    "STANDARD": ["app", "web", "db", "fs", "nfs", "mq", "ldap", "build", "git", "log"],
    "MS_WINDOWS": ["FS", "DC", "APP", "RDS", "PRN", "IIS", "EXCH", "SCCM"],
    "ORACLE": ["ora", "oradb", "erp-db"],
    "MS_SQL_SERVER": ["SQL", "SQLPRD", "SQLRPT"],
    "VMWARE": ["app", "web", "api", "db", "cache", "jump", "ci", "k8s-node", "mon", "proxy"],
}
_TIERS = ["prod", "prd", "dev", "test", "uat", "dr"]
_FREQUENCY = ["Daily", "Weekly", "Nightly", "Hourly"]


_per_thread = threading.local()


def _seeded_faker(seed: int) -> Faker:
    """A Faker reseeded with ``seed``: one instance per thread, as building one costs ~4 ms and
    reseeding nothing (a load run builds thousands of domains); its output is a fresh one's."""
    fake = getattr(_per_thread, "faker", None)
    if fake is None:
        fake = _per_thread.faker = Faker("en_US")
    fake.seed_instance(seed)
    return fake


@functools.cache
def _site_codes() -> tuple[str, ...]:
    """Three-letter starts of the words en_US city names are made of (Faker's city prefixes, first and last names)."""
    providers = Faker("en_US").providers
    names = [name for attribute in ("city_prefixes", "first_names", "last_names") for p in providers for name in getattr(p, attribute, ())]
    return tuple(sorted({name[:3].lower() for name in names if len(name) >= 3 and name[:3].isalpha()}))


@dataclass(slots=True)
class DataPools:
    """Words drawn from Faker once per seed, from which names are composed."""

    rng: random.Random
    words: list[str]
    sites: list[str]
    domain: str

    @classmethod
    def from_seed(cls, seed: int) -> DataPools:
        fake = _seeded_faker(seed)
        words = sorted({w.lower() for w in fake.words(nb=200) if w.isalpha() and 3 <= len(w) <= 8})
        sites = sorted(random.Random(seed).sample(_site_codes(), 24))
        domain = f"{fake.domain_word()}.{random.Random(seed).choice(['corp', 'local', 'lan', 'int'])}"
        return cls(random.Random(seed), words, sites, domain)

    def master_hostname(self, index: int) -> str:
        site = self.rng.choice(self.sites)
        return f"nbu-{site}-primary{index + 1:02d}.{self.domain}"

    def client_name(self, policy_type: str, index: int) -> str:
        role = self.rng.choice(_ROLES.get(policy_type, _ROLES["STANDARD"]))
        site = self.rng.choice(self.sites)
        if policy_type == "VMWARE":
            style = index % 3
            if style == 0:
                return f"vm-{role}-{self.rng.choice(self.words)}-{index:03d}"
            if style == 1:
                return f"{site.upper()}-{role.upper()}{index:03d}"
            return f"{self.rng.choice(_TIERS)}-{role}{index:03d}"
        if policy_type in ("MS_WINDOWS", "MS_SQL_SERVER"):
            return f"{site.upper()}-{role}{index:02d}"  # NetBIOS-style names
        return f"{site}-{role}{index:02d}.{self.domain}"

    def policy_name(self, policy_type: str, index: int) -> str:
        word = self.rng.choice(self.words)
        tier = self.rng.choice(_TIERS)
        styles = {
            "VMWARE": [f"VIP_{tier.upper()}_{word.capitalize()}_{index:02d}", f"vmware-{tier}-{word}{index:02d}"],
            "STANDARD": [f"STD_Linux_{word.capitalize()}_{self.rng.choice(_FREQUENCY)}", f"{tier}-unix-fs-{index:02d}"],
            "MS_WINDOWS": [f"WIN_{tier.upper()}_{word.capitalize()}_FS", f"win-{word}-{index:02d}"],
            "ORACLE": [f"ORA_{word.upper()}_{tier.upper()}_RMAN"],
            "MS_SQL_SERVER": [f"SQL_{tier.upper()}_{word.capitalize()}_Full"],
        }
        return self.rng.choice(styles.get(policy_type, [f"{policy_type.lower()}-{word}-{index:02d}"]))

    def full_size_gb(self, policy_type: str) -> float:
        median, sigma = _SIZES_GB.get(policy_type, (100, 1.0))
        return round(min(median * self.rng.lognormvariate(0, sigma), median * 40), 1)


def build_policies(pools: DataPools, client_counts: dict[str, int]) -> list[Policy]:
    """Clients of each type grouped into policies with full, incremental, cumulative, user and archive schedules."""
    policies: list[Policy] = []
    used_names: set[str] = set()
    for policy_type, count in client_counts.items():
        clients = []
        names: set[str] = set()
        for index in range(count):
            name = pools.client_name(policy_type, index)
            while name in names:
                name = f"{name}-{len(names)}"
            names.add(name)
            clients.append(Client(name, policy_type, pools.full_size_gb(policy_type)))
        per_policy = _CLIENTS_PER_POLICY.get(policy_type, 4)
        for start in range(0, count, per_policy):
            name = pools.policy_name(policy_type, len(policies))
            while name in used_names:
                name = f"{name}_{len(used_names)}"
            used_names.add(name)
            policies.append(
                Policy(
                    name=name,
                    policy_type=policy_type,
                    clients=clients[start : start + per_policy],
                    schedules={
                        "full": Schedule("Full_Weekly", "ST_FULL", 28 * DAY),
                        "incremental": Schedule("Incr_Daily", "ST_DINC", 14 * DAY),
                        "cumulative": Schedule("Cinc_Daily", "ST_CINC", 14 * DAY),
                        "user": Schedule("Default-Application-Backup", "ST_UBACKUP", 7 * DAY),
                        "archive": Schedule("User-Archive", "ST_UARCHIVE", 365 * DAY),
                    },
                    streams=2 if policy_type == "ORACLE" else 1,
                    max_jobs=4 if policy_type == "VMWARE" else 8,
                )
            )
    return policies
