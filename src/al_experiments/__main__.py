"""``python -m al_experiments`` runs the Hydra app, like ``al-run``."""

from al_experiments.app.cli import main

if __name__ == "__main__":
    main()
