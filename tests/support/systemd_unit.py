"""A shipped systemd unit run as systemd would run it, for machines where systemd is not PID 1.

Reads the unit's [Service] section and starts its ExecStart with the environment systemd
gives it: the variables of each EnvironmentFile (read by root, before privileges drop),
HOME/USER/LOGNAME/SHELL of `User=`, a plain PATH, working directory `/`, under `User=` and
`Group=` with no other groups, every signal at its default and none blocked (SIGPIPE
ignored, systemd's IgnoreSIGPIPE=yes). Paths of the unit under /etc/ are looked up below a
test's `sysconfdir` (where scripts/install.sh --sysconfdir put them).
"""

from __future__ import annotations

import contextlib
import grp
import pwd
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deployments" / "systemd"
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def service_section(unit: str) -> dict[str, list[str]]:
    """Each key of the unit's [Service] section with its values, in order."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in (UNITS / unit).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile reads them (comments and blanks skipped)."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def signals_as_systemd_execs() -> None:
    """Every signal at its default, none blocked, SIGPIPE ignored: as systemd starts a service.

    Not what the test process has: a suite started as a background job of a script ignores
    SIGINT, exec keeps that, and a unit stopped by KillSignal=SIGINT would then ignore its stop.
    """
    for number in signal.valid_signals():
        if number not in (signal.SIGKILL, signal.SIGSTOP):
            # The C library's own real-time signals refuse it.
            with contextlib.suppress(OSError, ValueError):
                signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def expand(argument: str, env: dict[str, str]) -> str:
    """systemd's ${VAR} expansion in a command line's argument."""
    return re.sub(r"\$\{(\w+)\}", lambda m: env.get(m[1], ""), argument)


@dataclass
class Service:
    """What systemd would start for one unit: argv, environment, user and group."""

    unit: str
    argv: list[str]
    env: dict[str, str]
    user: str
    group: str
    settings: dict[str, list[str]]

    def start(self, log: Path) -> subprocess.Popen[bytes]:
        """Start it under its user and group only, output to `log`, in its own session."""
        return subprocess.Popen(
            self.argv,
            env=self.env,
            cwd="/",
            user=self.user,
            group=self.group,
            extra_groups=[],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            restore_signals=False,
            preexec_fn=signals_as_systemd_execs,
        )


def service(unit: str, sysconfdir: Path) -> Service:
    """The unit as systemd would start it, its /etc/ files read below `sysconfdir`."""
    settings = service_section(unit)
    (user,) = settings["User"]
    group = settings.get("Group", [pwd.getpwnam(user).pw_name])[-1]
    grp.getgrnam(group)  # exists, or KeyError names it
    account = pwd.getpwnam(user)
    env = {
        "PATH": SYSTEMD_PATH,
        "HOME": account.pw_dir,
        "USER": user,
        "LOGNAME": user,
        "SHELL": account.pw_shell,
    }
    for name in settings.get("EnvironmentFile", []):
        path = Path(name.removeprefix("-"))
        if path.parts[1] == "etc":
            path = sysconfdir.joinpath(*path.parts[2:])
        env |= read_env_file(path)
    (exec_start,) = settings["ExecStart"]
    argv = [expand(a, env) for a in exec_start.split()]
    return Service(unit, argv, env, user, group, settings)
