"""An al-run command line is checked before Hydra starts: each mistake is one sentence in the
project's style (did-you-mean for group options, the expected type for a type error), and a
refused command leaves nothing behind. In-process, through ``check_command``; the CLI tests run
a few of these end to end."""

from __future__ import annotations

import pytest

from al_experiments.app.cli import _config_groups_help  # noqa: F401  (registers the configs)
from al_experiments.app.errors import ConfigError
from al_experiments.app.precheck import _jobs_to_check, check_command


@pytest.mark.parametrize(("argv", "message"), [
    (["loop.step_size=abc"], "loop.step_size=abc is invalid: loop.step_size takes a whole number."),
    (["model.fit.epochs=1.5"], "model.fit.epochs=1.5 is invalid: model.fit.epochs takes a whole number."),
    (["model.optimizer.learning_rate=fast"],
     "model.optimizer.learning_rate=fast is invalid: model.optimizer.learning_rate takes a number."),
    (["loop.stepsize=3"],
     "loop.stepsize is not a setting. Did you mean 'step_size'? Settings of loop: init_size, init_strategy, "
     "max_rounds, step_size."),
    (["seed=[1"], "The override 'seed=[1' cannot be read (no viable alternative at input '[1'); write key=value, "
                  "quoting values with spaces or brackets (see https://hydra.cc/docs/advanced/override_grammar/basic)."),
    (["+experiment=smok"], "+experiment=smok is not an option of the config group 'experiment'. Did you mean 'smoke'? "
                           "Options: benchmark_laptop, classical_breast_cancer, epig_unbalanced_digits, fashion_quick, gal2017, "
                           "gal2017_fashion_cpu, "
                           "quick, repeated_digits, repeated_fashion, repeated_fashion_cpu, repeated_mnist, smoke; "
                           "add your own with "
                           "--config-dir DIR holding experiment/<name>.yaml."),
    # the project's own value checks, on every value of a sweep
    (["-m", "loop.step_size=10,0"], "loop.step_size=0 is invalid: it must be a whole number >= 1."),
    (["-m", "seed=0,1", "model.fit.min_steps=0"], "model.fit.min_steps=0 is invalid: it must be a whole number >= 1 or null."),
])
def test_mistakes_are_one_sentence(argv, message):
    with pytest.raises(ConfigError) as info:
        check_command(argv)
    assert str(info.value) == message


def test_a_misspelt_group_option_says_did_you_mean_and_lists_the_options():
    with pytest.raises(ConfigError) as info:
        check_command(["-m", "query=random,bladd", "seed=0,1"])
    text = str(info.value)
    assert text.startswith("query=bladd is not an option of the config group 'query'. Did you mean 'bald'? Options: ")
    assert "batch_bald, batch_bald_culled, coreset, epig" in text and "\n" not in text


def test_a_misspelt_strategy_name_in_a_sweep_lists_the_known_names():
    for argv in (["query=bqld"], ["-m", "query.name=bqld", "seed=0,1"]):
        with pytest.raises(ConfigError) as info:
            check_command(argv)
        text = str(info.value)
        assert "bqld" in text and "Did you mean 'bald'" in text and "\n" not in text, text
    assert "query.name='bqld' is not a query function" in text and "Known names: badge, bald, batch_bald" in text


def test_good_commands_and_hydra_flags_pass():
    check_command([])
    check_command(["-m", "query=random,bald", "seed=range(3)", "+experiment=smoke", "hydra/launcher=local"])
    check_command(["--help"])  # Hydra's own flags are Hydra's business
    check_command(["--cfg", "job", "loop.step_size=abc"])
    for flag in (["--version"], ["-i"], ["--info", "searchpath"], ["--hydra-help"], ["-sc"], ["-c", "all"]):
        check_command([*flag, "loop.step_size=abc"])


@pytest.mark.parametrize("option", [["--config-name", "config"], ["-cn", "config"], ["-cd", "."],
                                    ["--experimental-rerun", "config.pickle"], ["-p", "loop"]])
def test_an_option_s_value_is_not_read_as_an_override_and_the_overrides_are_still_checked(option):
    with pytest.raises(ConfigError, match=r"^loop.step_size=abc is invalid"):
        check_command(["-m", *option, "loop.step_size=abc"])


def test_every_swept_value_is_composed_once():
    jobs = list(_jobs_to_check(["query=random,bald,epig", "seed=0,1", "+experiment=smoke"]))
    assert jobs == [["query=random", "seed=0", "+experiment=smoke"],
                    ["query=bald", "seed=0", "+experiment=smoke"],
                    ["query=epig", "seed=0", "+experiment=smoke"],
                    ["query=random", "seed=1", "+experiment=smoke"]]
