"""The connection check: will the next upload work, and will Metrica count what it gets?

:func:`check_connection` asks Metrica, through a :class:`~.client.MetrikaClient`, whether

* the token works (401: it is refused);
* the counter is readable (``metrika:read``, and the token's account has access to it);
* the token may upload with the chosen method (``metrika:offline_data`` or ``metrika:write``;
  :meth:`~.client.MetrikaClient.probe_upload_access`);
* the counter's time zone is the one the files are written in;
* for goal-based conversions, each goal the settings name exists with exactly that identifier
  and is a JavaScript-event goal (``type == "action"``), the only kind an offline conversion's
  ``Target`` can reach (metrika-api.md §1.1).

It answers with :class:`Problem` items, each a code from this module and the values a message
needs; the caller words them. Errors that say nothing about the settings (network, quota, 5xx,
an unusable answer) are raised: the check could not run, which is not a failed check.
"""

from .errors import MetrikaAuthError, MetrikaSettingsError

TRANSPORT_SIMPLE_ORDERS = "simple_orders"
TRANSPORT_OFFLINE = "offline_conversions"
JS_EVENT_GOAL = "action"

PROBLEM_TOKEN = "token"  # the token is refused (invalid, expired, revoked)
PROBLEM_COUNTER_ACCESS = "counter_access"  # cannot read the counter: access or metrika:read
PROBLEM_COUNTER_NOT_FOUND = "counter_not_found"  # no such counter
PROBLEM_UPLOAD_SCOPE = "upload_scope"  # may not upload: metrika:offline_data / metrika:write
PROBLEM_TIME_ZONE = "time_zone"  # the counter's time zone is not the files' one
PROBLEM_GOAL_UNKNOWN = "goal_unknown"  # no goal with this exact identifier
PROBLEM_GOAL_KIND = "goal_kind"  # a goal with this identifier, but not a JavaScript event


class Problem:
    """One failed check: ``code`` (a ``PROBLEM_*`` constant) and ``values`` for its message
    (``goal``, ``kind``, ``name``, ``counter_time_zone``, ``files_time_zone``, ``detail``)."""

    __slots__ = ("code", "values")

    def __init__(self, code, **values):
        self.code = code
        self.values = values

    def __repr__(self):
        return "Problem(%r, %r)" % (self.code, self.values)

    def __eq__(self, other):
        return isinstance(other, Problem) and (self.code, self.values) == (
            other.code,
            other.values,
        )

    __hash__ = None


class HealthReport:
    """What :func:`check_connection` found: ``counter`` (Metrica's counter dict, or ``None``
    when it could not be read) and ``problems`` (a list of :class:`Problem`, empty when all
    is well)."""

    __slots__ = ("counter", "problems")

    def __init__(self, counter=None, problems=None):
        self.counter = counter
        self.problems = list(problems or ())

    @property
    def ok(self):
        return not self.problems

    @property
    def codes(self):
        return [problem.code for problem in self.problems]


def check_connection(client, *, transport, goals=(), files_time_zone=None):
    """Run every check against Metrica (see the module docstring).

    :param client: a :class:`~.client.MetrikaClient` of the company's counter and token
    :param transport: ``"simple_orders"`` or ``"offline_conversions"``
    :param goals: the goal identifiers the settings name (checked for goal-based conversions)
    :param files_time_zone: the time zone the files are written in (``None``: not fixed yet)
    :return: :class:`HealthReport`
    :raise MetrikaError: the check could not run (network, quota, 5xx, unexpected answer)
    """
    try:
        counter = client.get_counter()
    except MetrikaAuthError as err:
        code = PROBLEM_TOKEN if err.status == 401 else PROBLEM_COUNTER_ACCESS
        return HealthReport(None, [Problem(code, detail=err.message)])
    except MetrikaSettingsError as err:
        if err.status != 404:
            raise
        return HealthReport(None, [Problem(PROBLEM_COUNTER_NOT_FOUND, detail=err.message)])
    report = HealthReport(counter)
    counter_time_zone = counter.get("time_zone_name") or "UTC"
    if files_time_zone and files_time_zone != counter_time_zone:
        report.problems.append(
            Problem(
                PROBLEM_TIME_ZONE,
                counter_time_zone=counter_time_zone,
                files_time_zone=files_time_zone,
            )
        )
    try:
        client.probe_upload_access(transport)
    except MetrikaAuthError as err:
        report.problems.append(Problem(PROBLEM_UPLOAD_SCOPE, detail=err.message))
    if transport == TRANSPORT_OFFLINE:
        wanted = [goal for goal in dict.fromkeys(goals) if goal]
        if wanted:
            report.problems.extend(goal_problems(client.list_goals(), wanted))
    return report


def goal_problems(counter_goals, identifiers):
    """The :class:`Problem` items of ``identifiers`` against the counter's goal list.

    A goal "has" an identifier when one of its conditions is an ``exact`` match of it (how
    Metrica stores a JavaScript-event goal's identifier). A JavaScript-event goal with it is
    right; a goal of another kind with it is :data:`PROBLEM_GOAL_KIND`; none at all is
    :data:`PROBLEM_GOAL_UNKNOWN`, with the identifier of a goal *named* like it, or of one
    that differs only in letter case, as a hint (``name``)."""
    problems = []
    for identifier in identifiers:
        owners = [goal for goal in counter_goals if identifier in _exact_identifiers(goal)]
        if any(goal.get("type") == JS_EVENT_GOAL for goal in owners):
            continue
        if owners:
            problems.append(
                Problem(
                    PROBLEM_GOAL_KIND,
                    goal=identifier,
                    kind=str(owners[0].get("type") or "?"),
                    name=str(owners[0].get("name") or ""),
                )
            )
            continue
        problems.append(
            Problem(PROBLEM_GOAL_UNKNOWN, goal=identifier, name=_hint(counter_goals, identifier))
        )
    return problems


def _exact_identifiers(goal):
    return {
        condition.get("url")
        for condition in goal.get("conditions") or ()
        if isinstance(condition, dict) and condition.get("type") == "exact"
    }


def _hint(counter_goals, identifier):
    """The identifier of the JavaScript-event goal the administrator probably meant: one named
    ``identifier``, or whose identifier differs from it only in letter case; else ``""``."""
    folded = identifier.casefold()
    for goal in counter_goals:
        if goal.get("type") != JS_EVENT_GOAL:
            continue
        for candidate in sorted(_exact_identifiers(goal)):
            if goal.get("name") == identifier or candidate.casefold() == folded:
                return candidate
    return ""
