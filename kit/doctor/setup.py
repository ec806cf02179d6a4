"""What the doctor examines: the configuration as far as it loads, the client settings and the
outbox URL, each with the reason it is missing.

The file is read leniently: a ``{ env = "NAME" }`` secret whose variable is unset does not stop
the load (as it stops every other command) but is noted in ``unset_variables``, so one run
reports a missing webhook secret *and* everything else. The stand-in value such a secret gets
is never used: the checks look at ``unset_variables`` first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import attrs

from kit.config import ClientConfig
from kit.configfile import KitConfig, Secret, load_config
from kit.errors import ConfigError, ConfigFileError

_UNSET = "\x00unset"  # a value no real secret has; never sent anywhere


class _Recording(Mapping[str, str]):
    """``environ`` that answers every unset or empty variable with a stand-in, and notes it."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.unset: set[str] = set()

    def __getitem__(self, key: str) -> str:
        value = self._environ.get(key)
        if value:
            return value
        self.unset.add(key)
        return _UNSET

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


@attrs.frozen(kw_only=True)
class LoadedFile:
    """The configuration file as far as it loads: ``config`` is None when it cannot be used
    (``problems`` says why), or when no file was given (``origin`` None)."""

    origin: str | None
    config: KitConfig | None = None
    problems: tuple[str, ...] = ()
    unset_variables: frozenset[str] = frozenset()

    def is_unset(self, secret: Secret | None) -> bool:
        """``secret`` comes from a variable that is not set."""
        return secret is not None and secret.env is not None and secret.env in self.unset_variables

    def usable(self) -> KitConfig | None:
        """The file's settings with every secret whose variable is unset left out, so what is
        built from it (the client settings) reports that secret as missing, never uses it."""
        config = self.config
        if config is None:
            return None
        etrusted = config.etrusted
        blanks = {
            a.name: None
            for a in attrs.fields(type(etrusted))
            if isinstance(getattr(etrusted, a.name), Secret)
            and self.is_unset(getattr(etrusted, a.name))
        }
        outbox = config.outbox
        if self.is_unset(outbox.url):
            outbox = attrs.evolve(outbox, url=None)
        return attrs.evolve(config, etrusted=attrs.evolve(etrusted, **blanks), outbox=outbox)


def load_file(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> LoadedFile:
    """Read the configuration file at ``path`` (None: no file), leniently (see the module)."""
    if path is None:
        return LoadedFile(origin=None)
    origin = os.fspath(path)
    recording = _Recording(environ)
    try:
        config = load_config(path, environ=recording)
    except ConfigFileError as exc:
        return LoadedFile(origin=origin, problems=tuple(str(p) for p in exc.problems))
    except ConfigError as exc:
        return LoadedFile(origin=origin, problems=(str(exc),))
    return LoadedFile(origin=origin, config=config, unset_variables=frozenset(recording.unset))


@attrs.frozen(kw_only=True)
class Setup:
    """Everything the checks look at. Built by the command line, which alone knows which of
    flag, variable and file wins; a setting that could not be built carries its reason."""

    file: LoadedFile
    client: ClientConfig | None = None
    client_problem: str | None = None
    db_url: str | None = attrs.field(default=None, repr=False)  # may carry a password
    db_problem: str | None = None


__all__ = ["LoadedFile", "Setup", "load_file"]
