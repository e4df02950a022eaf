"""Findings: what the emulator reports instead of raising."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class Finding:
    """One broken rule, located in one message.

    ``pointer`` is the RFC 6901 JSON pointer of the faulty value inside the
    message ("" for the whole message); ``rule`` names what was broken (a JSON
    Schema keyword such as ``enum``, or a contract rule id); ``message`` says
    it in words a person reads.
    """

    pointer: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message} [{self.rule}]"


def json_pointer(path: Iterable[str | int]) -> str:
    """The JSON pointer of a path of keys and indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


class Basis(Enum):
    """Where a rule comes from: what the NBWSS documentation says, or a decision of ours where it is silent."""

    DOCUMENTED = "documented"
    OUR_DECISION = "our decision"


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What a rule checks, and why it is a rule."""

    description: str
    checks: str
    basis: Basis
    warning_only: bool = False


class RuleId(str, Enum):
    """The contract rules, defined once: every module names a rule by one of these, never by a loose string.

    A ``RuleId`` is a ``str`` (its value is the id printed and written to reports),
    so it compares equal to the id's text; :meth:`of` turns text into a ``RuleId``
    and refuses an unknown one, so that a misspelt id is an error, never a rule
    that can no longer fail.
    """

    CONNECT_ANSWERED = "connect.answered"
    CONNECT_ACCEPTS_TOKEN = "connect.accepts-token"
    CONNECT_REFUSES_WRONG_TOKEN = "connect.refuses-wrong-token"
    ACK_EVERY_NOTIFICATION = "ack.every-notification"
    ACK_WITHIN_TIMEOUT = "ack.within-timeout"
    ACK_ONCE = "ack.once"
    ACK_KNOWN_ID = "ack.known-id"
    ACK_DUPLICATE_ACCEPTED = "ack.duplicate-accepted"
    ACK_PAYLOAD = "ack.payload"
    FRAMES_JSON = "frames.json"
    FRAMES_SCHEMA = "frames.schema"
    FRAMES_DIRECTION = "frames.direction"
    FRAMES_SIZE = "frames.size"
    CONNECTION_KEPT = "connection.kept"
    RECONNECT_ACCEPTED = "reconnect.accepted"
    COMMAND_AFTER_CONNECT = "command.after-connect"
    COMMAND_WELL_FORMED = "command.well-formed"
    MASTER_FRAMES_VALID = "master.frames-valid"
    TRANSPORT_WSS = "transport.wss"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def info(self) -> RuleInfo:
        return RULE_INFO[self]

    @property
    def description(self) -> str:
        return RULE_INFO[self].description

    @property
    def warning_only(self) -> bool:
        return RULE_INFO[self].warning_only

    @classmethod
    def of(cls, text: str) -> RuleId:
        """The rule ``text`` names (an id, or a finding kind judged under a rule); ValueError for anything else."""
        if isinstance(text, RuleId):
            return text
        alias = FINDING_KINDS.get(text)
        if alias is not None:
            return alias
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"unknown contract rule {text!r}; known: {', '.join(r.value for r in cls)}") from None


#: Finding kinds a driver reports that are judged under a rule of their own family.
FINDING_KINDS: dict[str, RuleId] = {
    "frames.text": RuleId.FRAMES_JSON,  # a binary frame: not a text frame holding JSON
    "frames.schema.sent": RuleId.MASTER_FRAMES_VALID,  # the master's own frame broke a schema
}

_D, _O = Basis.DOCUMENTED, Basis.OUR_DECISION
RULE_INFO: dict[RuleId, RuleInfo] = {
    RuleId.CONNECT_ANSWERED: RuleInfo(
        "CONNECT is answered with the same id and a boolean valid within the connect time-out",
        "the first frame after CONNECT: a CONNECT RESPONSE with the request's id, an object payload and a boolean valid",
        _D,
    ),
    RuleId.CONNECT_ACCEPTS_TOKEN: RuleInfo(
        "the right token is accepted with valid: true", "the CONNECT RESPONSE's valid for the registered token", _D
    ),
    RuleId.CONNECT_REFUSES_WRONG_TOKEN: RuleInfo(
        "a wrong token is refused (valid: false, or the connection closed), on a second connection",
        "a CONNECT with a random token, after the run, on the endpoint the run was connected to",
        _D,
    ),
    RuleId.ACK_EVERY_NOTIFICATION: RuleInfo(
        "every notification is acknowledged: none lost after resends and reconnects",
        "each NOTIFICATION REQUEST id gets a NOTIFICATION RESPONSE with the same id before the run ends",
        _D,
    ),
    RuleId.ACK_WITHIN_TIMEOUT: RuleInfo(
        "every acknowledgement arrives within the ack time-out (notification.sendTimeout)",
        "the time from a notification's send to its acknowledgement (sendTimeout read as the ack deadline)",
        _O,
    ),
    RuleId.ACK_ONCE: RuleInfo(
        "a notification sent once is acknowledged once", "acknowledgements of ids already acknowledged (every REQUEST has one RESPONSE)", _D
    ),
    RuleId.ACK_KNOWN_ID: RuleInfo(
        "acknowledgements carry the id of a notification the master sent", "the id of every NOTIFICATION RESPONSE", _D
    ),
    RuleId.ACK_DUPLICATE_ACCEPTED: RuleInfo(
        "a duplicate notification (same id, as after a reconnect) is acknowledged again",
        "a notification sent again with an id already acknowledged gets a second acknowledgement",
        _D,
    ),
    RuleId.ACK_PAYLOAD: RuleInfo(
        "an acknowledgement's payload is an object ({} will do)",
        "the payload of every NOTIFICATION RESPONSE; the guide shows an object and says nothing of [] or none",
        _O,
        warning_only=True,
    ),
    RuleId.FRAMES_JSON: RuleInfo(
        "every frame from the endpoint is a text frame holding JSON", "the opcode and the text of every frame", _D
    ),
    RuleId.FRAMES_SCHEMA: RuleInfo(
        "every frame from the endpoint is valid against the NBWSS schemas (RESPONSE subType included)",
        "every frame against the schema of its type and subType",
        _D,
    ),
    RuleId.FRAMES_DIRECTION: RuleInfo(
        "the endpoint sends only CONNECT RESPONSE, NOTIFICATION RESPONSE and COMMAND REQUEST", "type and subType of every frame", _D
    ),
    RuleId.FRAMES_SIZE: RuleInfo(
        "frames from the endpoint fit the master's frame size limit", "the size of every frame against --max-size (1 MiB)", _O
    ),
    RuleId.CONNECTION_KEPT: RuleInfo(
        "the endpoint keeps the connection open while the master streams", "closes that the master did not start", _O
    ),
    RuleId.RECONNECT_ACCEPTED: RuleInfo(
        "after a dropped connection the master reconnects and CONNECT is accepted again",
        "the CONNECT after a deliberate or accidental drop",
        _D,
    ),
    RuleId.COMMAND_AFTER_CONNECT: RuleInfo(
        "COMMAND requests come only after the connection is established", "COMMAND REQUESTs received before valid: true", _D
    ),
    RuleId.COMMAND_WELL_FORMED: RuleInfo(
        "COMMAND requests carry Content-Type for the NetBackup version, and Authorization after login",
        "headers of every COMMAND REQUEST, and the token in Authorization",
        _D,
    ),
    RuleId.MASTER_FRAMES_VALID: RuleInfo(
        "the emulated master's own frames are valid against the schemas (a check of the messages sent)",
        "every frame the master sent against its schema",
        _O,
    ),
    RuleId.TRANSPORT_WSS: RuleInfo(
        "the endpoint is served over wss:// (a real master refuses ws://)", "the scheme of the endpoint's URL", _D, warning_only=True
    ),
}
