"""Strategies from installed packages (entry-point group ``al_experiments.strategies``).

Each test installs a real distribution the way pip leaves one behind (a ``*.dist-info`` folder
with ``entry_points.txt`` next to the package's modules) into a folder on ``sys.path``, so
``importlib.metadata`` finds it exactly as it finds a pip-installed package.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import threading
import types
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra

from al_experiments.acquisition import (
    AcquisitionFunction,
    StrategyPluginError,
    available_queries,
    get_query,
    registry,
    unregister_query,
)
from al_experiments.app.cli import CONF_DIR
from al_experiments.app.errors import ConfigError
from al_experiments.app.schema import register_configs, register_strategy_configs, validate

from _app_helpers import QUICK_CLASSICAL, cli_command


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A fresh site folder on sys.path; everything it registered is removed afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_PLUGINS_LOADED", None)
    before_modules, before_names = set(sys.modules), set(available_queries(load_plugins=False))
    yield tmp_path
    for name in set(available_queries(load_plugins=False)) - before_names:
        unregister_query(name)
    for module in set(sys.modules) - before_modules:
        if module.startswith("plugin_"):
            del sys.modules[module]


def install(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[al_experiments.strategies]\n{lines}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    importlib.invalidate_caches()


SCORE_MODULE = """
    import numpy as np
    from al_experiments.acquisition import register_query

    @register_query("plugin_gap")
    def plugin_gap(probs):
        mean = np.asarray(probs).mean(axis=1)
        top = np.sort(mean, axis=1)
        return top[:, -2] - top[:, -1]
"""


def test_a_decorated_function_is_found_by_name_without_importing_it(site):
    install(site, "plugin-gap", {"plugin_gap": "plugin_gap_mod:plugin_gap"}, {"plugin_gap_mod": SCORE_MODULE})
    assert "plugin_gap_mod" not in sys.modules
    strategy = get_query("plugin_gap")  # not registered yet: the lookup loads the entry points
    assert strategy.name == "plugin_gap" and strategy.kind == "score"
    probs = np.array([[[0.5, 0.5]], [[0.9, 0.1]]])
    np.testing.assert_allclose(strategy.fn(probs), [0.0, -0.8])
    # The Python API takes the name too, with the score options every score strategy has.
    assert AcquisitionFunction("plugin_gap").name == "plugin_gap"
    assert "plugin_gap" in available_queries()


def test_a_strategy_object_is_registered_under_the_entry_point_name(site):
    source = """
        import numpy as np
        from al_experiments.acquisition import BatchStrategy

        def first_n(view, batch_size, rng, offset=0):
            return np.arange(offset, offset + batch_size)

        strategy = BatchStrategy("ignored_here", first_n)
    """
    install(site, "plugin-first", {"plugin_first": "plugin_first_mod:strategy"}, {"plugin_first_mod": source})
    strategy = get_query("plugin_first")
    assert strategy.kind == "batch" and strategy.options() == {"offset": 0}


def test_a_broken_plugin_is_one_sentence_naming_the_package(site):
    install(site, "plugin-broken", {"plugin_broken": "plugin_broken_mod:fn"},
            {"plugin_broken_mod": "import a_module_that_is_not_installed\n"})
    with pytest.raises(StrategyPluginError) as info:
        get_query("plugin_broken")
    message = str(info.value)
    assert "plugin-broken 0.1" in message and "'plugin_broken'" in message
    assert "No module named 'a_module_that_is_not_installed'" in message
    assert message.endswith("fix that package or uninstall it.") and "\n" not in message


def test_an_entry_point_that_registers_nothing_says_how_to_register(site):
    source = "def plugin_plain(probs):\n    return probs.mean(axis=(1, 2))\n"
    install(site, "plugin-plain", {"plugin_plain": "plugin_plain_mod:plugin_plain"}, {"plugin_plain_mod": source})
    with pytest.raises(StrategyPluginError, match=r"registered no strategy named 'plugin_plain'.*@register_query"):
        available_queries()


def test_an_unknown_name_still_says_did_you_mean_after_loading(site):
    install(site, "plugin-gap", {"plugin_gap": "plugin_gap_mod:plugin_gap"}, {"plugin_gap_mod": SCORE_MODULE})
    with pytest.raises(KeyError, match=r"Did you mean 'plugin_gap'\?"):
        get_query("plugin_gpa")


def test_installed_strategies_become_query_options_of_the_app(site):
    source = """
        import numpy as np
        from al_experiments.acquisition import register_batch_query

        def _check(settings):
            if settings["width"] < 1:
                raise ValueError(f"width={settings['width']} must be >= 1.")

        @register_batch_query("plugin_widest", check=_check)
        def plugin_widest(view, batch_size, rng, width=3, label="x"):
            return np.arange(batch_size)
    """
    install(site, "plugin-widest", {"plugin_widest": "plugin_widest_mod:plugin_widest"},
            {"plugin_widest_mod": source})
    register_configs()
    assert "plugin_widest" in register_strategy_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
            cfg = compose("config", overrides=["query=plugin_widest"])
            assert cfg.query.name == "plugin_widest"
            assert dict(cfg.query.options) == {"width": 3, "label": "x"}
            validate(cfg)
            bad = compose("config", overrides=["query=plugin_widest", "query.options.width=0"])
            with pytest.raises(ConfigError, match="query.options: width=0 must be >= 1"):
                validate(bad)
    finally:
        GlobalHydra.instance().clear()
        ConfigStore.instance().repo["query"].pop("plugin_widest.yaml", None)


# A plug-in that asks the registry while it is imported: it looks a built-in up, and registers
# its strategy unless an earlier load already did. Each selection is written down, so a test can
# tell that this strategy (not another) chose the points.
POLITE_MODULE = """
    import os

    import numpy as np
    from al_experiments.acquisition import available_queries, get_query, register_batch_query

    MAX_ENTROPY = get_query("max_entropy")

    def plugin_polite(view, batch_size, rng):
        scores = view.scores(MAX_ENTROPY)
        chosen = np.argsort(-scores, kind="stable")[:batch_size]
        with open(os.environ["PLUGIN_POLITE_LOG"], "a") as log:
            log.write(" ".join(map(str, chosen)) + "\\n")
        return chosen

    if "plugin_polite" not in available_queries():
        register_batch_query("plugin_polite", plugin_polite)
"""


def test_a_plugin_that_calls_the_registry_while_imported_runs_in_al_run(site, tmp_path):
    install(site, "plugin-polite", {"plugin_polite": "plugin_polite_mod"}, {"plugin_polite_mod": POLITE_MODULE})
    log = tmp_path / "selections.txt"
    command, env = cli_command(tmp_path, *QUICK_CLASSICAL, "query=plugin_polite")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["PLUGIN_POLITE_LOG"] = str(log)
    # The timeout only stops a hang from holding the suite: a hang is the failure under test.
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rounds = log.read_text().splitlines()
    assert len(rounds) == 2 and all(len(line.split()) == 10 for line in rounds)  # smoke: 2 rounds of 10


def test_a_plugin_calling_the_registry_while_imported_sees_the_names_so_far(site):
    source = """
        from al_experiments.acquisition import available_queries, get_query, register_query

        SEEN = available_queries()
        if "plugin_echo" not in SEEN:
            register_query("plugin_echo", get_query("max_entropy").fn)
    """
    install(site, "plugin-echo", {"plugin_echo": "plugin_echo_mod"}, {"plugin_echo_mod": source})
    found: list[object] = []
    lookup = threading.Thread(target=lambda: found.append(get_query("plugin_echo")), daemon=True)
    lookup.start()
    lookup.join(timeout=60)  # a hang guard (a deadlock would never return), not a pace
    assert not lookup.is_alive(), "looking up a plug-in that calls the registry while imported hangs"
    assert found[0].fn is get_query("max_entropy").fn
    seen = sys.modules["plugin_echo_mod"].SEEN
    assert "bald" in seen and "plugin_echo" not in seen  # registered while loading, not before
    with pytest.raises(KeyError, match="Unknown query function 'plugin_nowhere'"):
        get_query("plugin_nowhere")


def test_another_thread_waits_until_the_plugins_have_loaded(site):
    # The plug-in's import lets the test start a second thread, then finishes registering; the
    # second thread's listing must include the plug-in's name, so it waited for the load.
    signals = types.ModuleType("plugin_signals")
    signals.importing, signals.asked = threading.Event(), threading.Event()
    sys.modules["plugin_signals"] = signals
    source = """
        import plugin_signals
        from al_experiments.acquisition import register_query

        plugin_signals.importing.set()
        plugin_signals.asked.wait(timeout=60)  # a guard against a broken test, not a pace
        register_query("plugin_late", lambda probs: probs.mean(axis=(1, 2)))
    """
    install(site, "plugin-late", {"plugin_late": "plugin_late_mod"}, {"plugin_late_mod": source})
    listings: list[list[str]] = []

    def ask() -> None:
        signals.asked.set()
        listings.append(available_queries())

    loader = threading.Thread(target=available_queries)
    loader.start()
    assert signals.importing.wait(timeout=60)
    asker = threading.Thread(target=ask)
    asker.start()
    loader.join(timeout=60)
    asker.join(timeout=60)
    assert not loader.is_alive() and not asker.is_alive()
    assert listings and "plugin_late" in listings[0]
