"""Service-center conversations (chat, voice transcripts and the virtual assistant), one per line.

Each conversation has a department, a patient mood and an agent. Departments differ in how tense
their conversations are (billing and referrals worst, the nurse line best); people with poorly
controlled chronic disease are more often frustrated; frustrated or angry patients are routed to the
agents of the escalation queue, who therefore handle harder (more negative) conversations; agents
differ in manner (warm, neutral or curt), which moves how the conversation ends. A virtual-assistant
("bot") conversation hands over to an agent when the patient is frustrated: it then keeps channel
"bot" (the channel it started on), gets an agent_id and escalated_from_bot = true.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from pipelines.generate import texts
from pipelines.generate.bulk_writer import Counters, JsonLinesSink
from pipelines.generate.clinical import Profile
from pipelines.generate.clock import DAY, Clock
from pipelines.generate.defects import Defects
from pipelines.generate.directory import Agent
from pipelines.generate.population import Person
from pipelines.generate.rng import Weighted, clamp, new_uuid, poisson, rint, rstep
from pipelines.generate.truth import Truth
from pipelines.generate.vocab import Json

SOURCE = "service_center"
_MOOD_POLARITY = {"calm": "neutral", "frustrated": "negative", "angry": "negative"}
"""The sentiment of an opener or detail drawn from a mood's pool (bot replies are left out: ambiguous)."""
Say = Callable[..., None]  # (speaker, text, gap, polarity=None)
"""Appends a turn: (speaker, text, gap range in seconds)."""
CONVERSATION_YEARS = 2
DEPARTMENT_TENSION = {
    "billing": 0.42,
    "referrals": 0.36,
    "pharmacy": 0.28,
    "scheduling": 0.22,
    "nurse_line": 0.15,
}
_CHANNELS = Weighted([("voice", 40.0), ("chat", 35.0), ("bot", 25.0)])


class ServiceCenter:
    """Writes service_center/conversations.NNN.ndjson."""

    def __init__(
        self, landing: Path, clock: Clock, defects: Defects, truth: Truth, agents: dict[str, list[Agent]]
    ) -> None:
        self.clock = clock
        self.agents = agents
        self.truth = truth
        self.sink = JsonLinesSink(
            landing, SOURCE, "service_center", "conversations", ("conversation_id",), defects, truth
        )

    def generate(self, rng: random.Random, person: Person, p: Profile) -> None:
        """The person's conversations over the last two years."""
        clock = self.clock
        hi = min(person.death_ts or clock.history_end, clock.history_end)
        lo = max(clock.history_end - CONVERSATION_YEARS * 365 * DAY, person.birth_ts)
        if hi - lo < DAY:
            return
        rate = 0.18 + 0.08 * p.chronic + 0.3 * (p.poor > 0) + 0.1 * bool(p.meds)
        n = poisson(rng, rate * (hi - lo) / (365 * DAY))
        if not n:
            return
        source = person.sources[0] if len(person.sources) == 1 else rng.choice(person.sources)
        reference = f"Patient/{person.ids[source]}"
        departments = Weighted(
            [
                ("scheduling", 35.0),
                ("billing", 20.0),
                ("pharmacy", 12.0 + 15 * bool(p.meds)),
                ("nurse_line", 10.0 + 8 * p.chronic),
                ("referrals", 10.0),
            ]
        )
        for _ in range(n):
            self._conversation(rng, p, source, reference, departments.pick(rng), rint(rng, lo, hi))

    def _conversation(
        self, rng: random.Random, p: Profile, source: str, reference: str, department: str, start: int
    ) -> None:
        clock = self.clock
        channel = _CHANNELS.pick(rng)
        tension = DEPARTMENT_TENSION[department] + 0.18 * (p.poor > 0) + 0.03 * p.chronic + rng.gauss(0, 0.2)
        mood = "angry" if tension > 0.72 else "frustrated" if tension > 0.42 else "calm"
        if channel != "bot" or mood != "calm" or rng.random() < 0.08:
            local_day = clock.local_day(start)
            start = clock.at_local(local_day, rstep(rng, 8 * 3600, 19 * 3600, 15))
        med = rng.choice(texts.MEDS_FOR_TEXT)
        turns: list[Json] = []
        polarity_of: dict[int, tuple[str, str]] = {}  # turn -> (text, polarity) the text pool fixes (truth)
        t = start

        def say(speaker: str, text: str, gap: tuple[int, int], polarity: str | None = None) -> None:
            """Append a turn `gap` seconds (a random range) after the previous one."""
            nonlocal t
            if turns:
                t += rint(rng, *gap)
            turns.append({"turn": len(turns) + 1, "speaker": speaker, "at": clock.dt(t), "text": text})
            if polarity is not None:
                polarity_of[len(turns)] = (text, polarity)

        gap = (10, 60) if channel == "voice" else (20, 150)
        opener = rng.choice(texts.OPENERS[department][mood]).format(med=med)
        agent: Agent | None = None
        escalated = False
        if channel == "bot":
            say("bot", texts.BOT_GREETING, (0, 1))
            say("patient", opener, (15, 90), _MOOD_POLARITY[mood])
            say("bot", texts.BOT_ANSWERS[department], (2, 6))
            if mood == "calm" and rng.random() > 0.08:
                say("patient", rng.choice(texts.BOT_CALM_REPLIES), (10, 60))
                say("bot", texts.BOT_CLOSING, (2, 5))
            else:
                escalated = True
                say("patient", rng.choice(texts.BOT_FRUSTRATED_REPLIES), (5, 40))
                say("bot", texts.BOT_HANDOFF, (2, 5))
                agent = self._pick_agent(rng, department, hard=True)
                wait = (60, 15 * 60) if mood == "calm" else (3 * 60, 25 * 60)
                say(
                    "agent",
                    texts.AGENT_GREETING["handoff"].format(
                        agent=_agent_name(agent), topic=texts.TOPICS[department]
                    ),
                    wait,
                )
                self._agent_part(rng, department, mood, agent, say, gap, first_patient=None)
        else:
            agent = self._pick_agent(rng, department, hard=mood != "calm")
            say("agent", texts.AGENT_GREETING[channel].format(agent=_agent_name(agent)), (0, 1))
            self._agent_part(rng, department, mood, agent, say, gap, first_patient=opener)
        conversation_id = new_uuid(rng)
        for turn, (text, polarity) in polarity_of.items():
            self.truth.turn_polarity(conversation_id, turn, text, polarity)
        self.sink.emit(
            {
                "conversation_id": conversation_id,
                "patient_source": source,
                "patient_reference": reference,
                "channel": channel,
                "agent_id": agent.agent_id if agent else None,
                "department": department,
                "started_at": clock.dt(start),
                "ended_at": clock.dt(t + rint(rng, 5, 60)),
                "escalated_from_bot": escalated,
                "turns": turns,
            }
        )

    def _pick_agent(self, rng: random.Random, department: str, hard: bool) -> Agent:
        team = self.agents[department]
        queue = [a for a in team if a.escalation_queue == hard]
        if queue and rng.random() < (0.75 if hard else 0.85):
            return rng.choice(queue)
        return rng.choice(team)

    def _agent_part(
        self,
        rng: random.Random,
        department: str,
        mood: str,
        agent: Agent,
        say: Say,
        gap: tuple[int, int],
        first_patient: str | None,
    ) -> None:
        """The agent-handled part: response, details, resolution and closings."""

        def style() -> str:
            """The agent's manner for one turn: warm, neutral or curt."""
            score = agent.empathy + rng.gauss(0, 0.4)
            return "warm" if score > 0.15 else "curt" if score < -0.5 else "neutral"

        if first_patient is not None:
            say("patient", first_patient, (5, 30), _MOOD_POLARITY[mood])
        say("agent", rng.choice(texts.AGENT_RESPONSES[style()]), gap)
        for _ in range(rint(rng, 0, 3)):
            say("patient", rng.choice(texts.PATIENT_DETAILS[mood]), gap, _MOOD_POLARITY[mood])
            say("agent", rng.choice(texts.AGENT_RESPONSES[style()]), gap)
        resolved_p = clamp(
            0.78 + 0.15 * agent.empathy - 0.25 * (mood == "angry") - 0.1 * (mood == "frustrated"), 0.1, 0.97
        )
        resolved = rng.random() < resolved_p
        good, bad = texts.RESOLUTIONS[department]
        say("agent", rng.choice(good if resolved else bad), (30, 240))
        manner = style()
        if resolved:
            closing = "positive" if mood == "calm" or rng.random() < 0.45 else "neutral"
            if manner == "curt" and rng.random() < 0.5:
                closing = "neutral"
        else:
            closing = "negative" if mood != "calm" or rng.random() < 0.4 else "neutral"
        say("patient", rng.choice(texts.PATIENT_CLOSINGS[closing]), gap, closing)
        say("agent", rng.choice(texts.AGENT_CLOSINGS[manner]), (3, 20))

    def finish(self, counters: Counters) -> dict[str, int]:
        """Close the files; records per file."""
        return self.sink.finish(counters)


def _agent_name(agent: Agent) -> str:
    return texts.AGENT_FIRST_NAMES[int(agent.agent_id.rsplit("-", 1)[1]) % len(texts.AGENT_FIRST_NAMES)]
