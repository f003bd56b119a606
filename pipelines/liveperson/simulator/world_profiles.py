"""The account's static cast: skills, agent groups and agent profiles, derived from the seed alone.

Shapes the published example shows are made to occur by construction (stratified over a seeded permutation,
not left to chance): agents with no, one and several skills; ``maxChats`` of -1, 0 and 2-5; the ``-1``/``Admin``
group; user names with spaces and user names equal to the nickname.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SKILL_NAMES = ("Sales", "Billing", "OrdersHandlers", "Support", "Retention", "Technical", "VIP", "Spanish")
GROUP_NAMES = ("Sales", "Support", "OrderHandlers", "Billing", "Retention", "Night Desk", "Escalations")
FIRST = ("Reem", "John", "Maya", "Liam", "Noa", "Omar", "Sara", "Ivan", "Chen", "Ana", "Tom", "Lea", "Ravi",
         "Yuki", "Eli", "Zoe", "Amir", "Nina", "Paul", "Dana", "Kofi", "Ines", "Mark", "Hana")
LAST = ("Diab", "Smith", "Cohen", "Garcia", "Müller", "Tanaka", "Okafor", "Rossi", "Levi", "Kim", "Silva", "Novak",
        "Haddad", "Brown", "Dubois", "Singh", "O'Neil", "Berg")

# Shift start hours (UTC), one entry per staffing block: follow-the-sun, denser at EMEA/Americas business hours,
# with the first and last blocks doubled up because their shifts are cut at midnight.
# Each agent takes one block for good (a seeded, stratified draw), so every block is staffed once agents >= blocks.
SHIFT_STARTS_H = (0.0, 0.0, 0.25, 1.0, 2.0, 4.0, 6.0, 7.0, 7.5, 8.0, 8.5, 9.0, 10.0, 12.0, 13.0, 13.5, 14.0, 15.0, 15.5,
                  16.0, 16.0, 16.0)

# maxChats per stratum of ten agents: one unlimited, one with no chat capacity, the rest 2-5.
MAX_CHATS_PATTERN = (-1, 0, 2, 3, 3, 4, 4, 4, 5, 2)
# Skill count per stratum of ten agents: 0, 1 or several.
SKILL_COUNT_PATTERN = (0, 1, 1, 1, 1, 2, 2, 3, 3, 4)


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """What the account knows about an agent, as ``availableAgents`` and ``info`` serve it."""

    agent_id: str
    user_name: str
    nickname: str
    email: str
    privilege_group: str
    agent_group_id: str
    agent_group_name: str
    skills: tuple[tuple[str, str], ...]
    max_chats: int
    voice_enabled: bool = False
    shift_start_h: float = 9.0


def build_skills(seed: int, count: int) -> list[tuple[str, str]]:
    rng = random.Random(f"skills:{seed}")
    ids = _numeric_ids(rng, count, base=259753)
    return [(ids[i], SKILL_NAMES[i] if i < len(SKILL_NAMES) else f"Skill {i + 1}") for i in range(count)]


def build_groups(seed: int, count: int) -> list[tuple[str, str]]:
    rng = random.Random(f"groups:{seed}")
    ids = _numeric_ids(rng, count, base=264325)
    return [(ids[i], GROUP_NAMES[i] if i < len(GROUP_NAMES) else f"Group {i + 1}") for i in range(count)]


def build_profiles(seed: int, count: int, skills: list[tuple[str, str]], groups: list[tuple[str, str]]
                   ) -> list[AgentProfile]:
    """``count`` agents; ids are numeric-looking, unique and increasing (like the published 8-digit ids)."""
    rng = random.Random(f"agents:{seed}")
    ids = _numeric_ids(rng, count, base=250254)
    strata = list(range(count))
    rng.shuffle(strata)
    shift_order = list(range(count))
    rng.shuffle(shift_order)
    used_names: set[str] = set()
    profiles = []
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        style = strata[i] % 7
        if style == 0:
            user_name = f"{first} {last}"
        elif style == 1:
            user_name = f"{first}{last[0]}".lower()
        else:
            user_name = f"{first}.{last}".lower().replace("'", "")
        base_name = user_name
        n = 1
        while user_name in used_names:
            n += 1
            user_name = f"{base_name}{n}"
        used_names.add(user_name)
        nickname = user_name if style == 0 else f"{first} {last[0]}."
        email_local = user_name.replace(" ", ".").lower()
        n_skills = min(SKILL_COUNT_PATTERN[strata[i] % 10], len(skills))
        agent_skills = tuple(sorted(rng.sample(skills, n_skills)))
        privilege = ("administrators" if strata[i] % 20 == 0 else
                     "agent managers" if strata[i] % 20 in (1, 11) else "agents")
        if privilege == "administrators" or not groups or strata[i] % 13 == 0:
            group_id, group_name = "-1", "Admin"
        else:
            group_id, group_name = groups[rng.randrange(len(groups))]
        profiles.append(AgentProfile(
            agent_id=ids[i],
            user_name=user_name,
            nickname=nickname,
            email=f"{email_local}@example.com",
            privilege_group=privilege,
            agent_group_id=group_id,
            agent_group_name=group_name,
            skills=agent_skills,
            max_chats=MAX_CHATS_PATTERN[strata[i] % 10],
            voice_enabled=strata[i] % 9 == 4,
            shift_start_h=SHIFT_STARTS_H[shift_order[i] % len(SHIFT_STARTS_H)],
        ))
    return profiles


def _numeric_ids(rng: random.Random, count: int, base: int) -> list[str]:
    """Increasing ids ending in ``13`` like the published ones (``25025413``), starting near ``base``."""
    ids, value = [], base
    for _ in range(count):
        value += rng.randint(40, 900)
        ids.append(f"{value}13")
    return ids
