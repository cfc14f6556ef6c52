"""An example project that extends al-experiments with its own network and query strategies."""
