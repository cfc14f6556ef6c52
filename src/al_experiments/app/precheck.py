"""Check an ``al-run`` command line before Hydra starts: one sentence per mistake, nothing written.

Hydra reports a bad override (``loop.step_size=abc``, ``query=bladd``) in several lines of its
own, and creates the run or sweep folder (and the sweep's MLflow store) before a job can refuse
its config. So the command is composed here first, with Hydra's compose API, which writes
nothing: every value of every swept override once (with the first value of the others), each
composition also passed through ``validate``. A mistake becomes a ``ConfigError`` with the
project's one-sentence message; a command that passes is then run by Hydra as usual.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterator, Sequence

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from al_experiments import conf
from al_experiments.app.errors import ConfigError
from al_experiments.app.schema import validate
from al_experiments.tracking.credentials import redact_text
from al_experiments.validation import closest_match

CONF_MODULE = conf.__name__  # the packaged tree, as hydra.main finds it
# Compositions at most (a sweep over many values is checked on its first ones).
_MAX_COMPOSITIONS = 64
_TYPE_WORDS = {"Integer": "a whole number", "Float": "a number", "Boolean": "true or false",
               "String": "a string"}


def command_parser() -> argparse.ArgumentParser:
    """The options of ``hydra.main``'s command line that matter here: those that run no job, and
    those that take a value (so the value is not read as an override). Any other option is left
    to Hydra, which refuses an unknown one itself."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in (["--help", "-h"], ["--hydra-help"], ["--version"], ["--shell-completion", "-sc"],
                 ["--resolve"], ["--run", "-r"], ["--multirun", "-m"]):
        parser.add_argument(*flag, action="store_true")
    parser.add_argument("--cfg", "-c")
    parser.add_argument("--info", "-i", nargs="?", const="all")
    for flag in (["--package", "-p"], ["--config-path", "-cp"], ["--config-name", "-cn"],
                 ["--config-dir", "-cd"], ["--experimental-rerun"]):
        parser.add_argument(*flag)
    parser.add_argument("overrides", nargs="*")
    return parser


def check_command(argv: Sequence[str]) -> None:
    """Raise ``ConfigError`` if the ``al-run`` arguments ``argv`` cannot compose or validate."""
    args, _ = command_parser().parse_known_args(list(argv))
    if args.help or args.hydra_help or args.version or args.info or args.shell_completion or args.cfg:
        return  # Hydra answers these itself and runs no job
    overrides = list(args.overrides or [])
    for job_overrides in _jobs_to_check(overrides):
        cfg = _compose(job_overrides, args.config_dir, args.config_name or "config")
        validate(cfg)
    _check_pool_workers(overrides)


def _check_pool_workers(overrides: list[str]) -> None:
    """The pool launcher's ``workers``, refused before the sweep opens its run and folder (the
    composed job config does not hold the launcher's settings). ``overrides`` parsed already."""
    from hydra_plugins.al_experiments_pool import workers_problem

    for override in OverridesParser.create().parse_overrides(overrides):
        if override.get_key_element() == "hydra.launcher.workers":
            workers = override.input_line.split("=", 1)[1] if override.is_sweep_override() else override.value()
            problem = workers_problem(workers)
            if problem:
                raise ConfigError(problem)


def _jobs_to_check(overrides: list[str]) -> Iterator[list[str]]:
    """Override lists covering every swept value once: the first values, then each other value."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:  # OverrideParseException and the grammar's own errors
        raise ConfigError(_parse_error(overrides, exc)) from None
    choices: list[list[str]] = []
    for override in parsed:
        if not override.is_sweep_override():
            choices.append([override.input_line])
            continue
        try:
            values = list(override.sweep_string_iterator())
        except Exception:  # interval() and sweeper plug-in syntax: checked by the jobs themselves
            continue
        choices.append([f"{override.get_key_element()}={value}" for value in values])
    choices = [options for options in choices if options]
    yield [options[0] for options in choices]
    count = 1
    for index, options in enumerate(choices):
        for option in options[1:]:
            if count >= _MAX_COMPOSITIONS:
                return
            job = [first for first, *_ in choices]
            job[index] = option
            count += 1
            yield job


def _compose(overrides: list[str], config_dir: str | None, config_name: str) -> DictConfig:
    extra = [f"hydra.searchpath=[file://{os.path.abspath(config_dir)}]"] if config_dir else []
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
            try:
                return compose(config_name, overrides=[*overrides, *extra])
            except MissingConfigException as exc:
                raise ConfigError(_missing_option(exc, overrides)) from None
            except OverrideParseException as exc:
                raise ConfigError(_parse_error(overrides, exc)) from None
            except ConfigCompositionException as exc:
                raise ConfigError(_composition_error(exc, overrides)) from None
    finally:
        GlobalHydra.instance().clear()


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    close = closest_match(word, candidates, cutoff=0.5)
    return f" Did you mean {close!r}?" if close else ""


def _missing_option(exc: Exception, overrides: list[str]) -> str:
    """``query=bladd``: the group, the bad option, the closest one and all of them."""
    missing = str(getattr(exc, "missing_cfg_file", "") or "")
    options = sorted(getattr(exc, "options", None) or [])
    group, _, option = missing.rpartition("/")
    if not group or not options:
        return f"{str(exc).splitlines()[0]}."
    given = next((o for o in overrides if re.match(rf"^[+~]*{re.escape(group)}=", o)), f"{group}={option}")
    return (f"{given} is not an option of the config group {group!r}.{_did_you_mean(option, options)} "
            f"Options: {', '.join(options)}; add your own with --config-dir DIR holding {group}/<name>.yaml.")


def _composition_error(exc: Exception, overrides: list[str]) -> str:
    cause = exc.__cause__ or exc.__context__
    full_key = str(getattr(cause, "full_key", "") or "")
    override = next((o for o in overrides if o.lstrip("+~").split("=", 1)[0] == full_key), full_key)
    if isinstance(cause, ValidationError) and full_key:
        wanted = re.search(r"could not be converted to (\w+)", str(cause))
        value = override.split("=", 1)[1] if "=" in override else ""
        if wanted:
            kind = _TYPE_WORDS.get(wanted.group(1), wanted.group(1).lower())
            return f"{full_key}={value} is invalid: {full_key} takes {kind}."
        return f"{full_key}={value} is invalid: {str(cause).splitlines()[0]}."
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and full_key:
        parent, _, leaf = full_key.rpartition(".")
        siblings = _keys_of(parent, overrides)
        return (f"{full_key} is not a setting.{_did_you_mean(leaf, siblings)} "
                f"Settings of {parent or 'the config'}: {', '.join(siblings)}.")
    first = str(exc).splitlines()[0].rstrip(".")
    return f"{first}."


def _keys_of(parent: str, overrides: list[str]) -> list[str]:
    """The keys of ``parent`` in the default config (for a did-you-mean)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
            cfg = compose("config")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        return sorted(node.keys()) if isinstance(node, DictConfig) else []
    except Exception:
        return []
    finally:
        GlobalHydra.instance().clear()


def _parse_error(overrides: list[str], exc: Exception) -> str:
    parser = OverridesParser.create()
    bad = None
    for override in overrides:  # the first one that does not parse on its own
        try:
            parser.parse_override(override)
        except Exception:  # the grammar's own errors come as HydraException or OverrideParseException
            bad = override
            break
    reason = redact_text(str(exc).splitlines()[0].rstrip("."))
    where = f"The override {redact_text(bad)!r}" if bad else "An override"
    return (f"{where} cannot be read ({reason}); write key=value, quoting values with spaces or "
            "brackets (see https://hydra.cc/docs/advanced/override_grammar/basic).")
