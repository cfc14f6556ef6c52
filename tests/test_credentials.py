"""Which tracking URIs carry a credential, and how one is shown masked."""

from __future__ import annotations

import pytest

from al_experiments.tracking.credentials import CredentialInUri, redact, redact_text, refuse_credentials


@pytest.mark.parametrize("uri", [
    "sqlite:////tmp/mlflow.db",
    "https://tracking.example:5050",
    "http://127.0.0.1:5000/",
    "postgresql://mlflow@127.0.0.1:5433/mlflow",  # a user name alone; the password from PGPASSFILE
    "https://tracking.example/?experiment=7",
])
def test_uris_without_a_secret_pass(uri):
    refuse_credentials(uri)


@pytest.mark.parametrize("uri, shown", [
    ("https://alice:s3cret@tracking.example:5050", "https://alice:***@tracking.example:5050"),
    ("https://alice@tracking.example:5050", "https://alice@tracking.example:5050"),  # sent as basic auth
    ("postgresql://mlflow:s3cret@127.0.0.1:5433/mlflow", "postgresql://mlflow:***@127.0.0.1:5433/mlflow"),
    ("http://tracking.example/?token=s3cret&x=1", "http://tracking.example/?token=***&x=1"),
    ("mysql://db.example/mlflow?password=s3cret", "mysql://db.example/mlflow?password=***"),
])
def test_a_uri_with_a_credential_is_refused_masked(uri, shown):
    with pytest.raises(CredentialInUri) as refused:
        refuse_credentials(uri, "mlflow.tracking_uri")
    sentence = str(refused.value)
    assert "s3cret" not in sentence and f"({shown})" in sentence, sentence
    assert sentence.startswith("mlflow.tracking_uri carries") and "MLFLOW_TRACKING_PASSWORD" in sentence
    assert redact(uri) == shown


def test_every_uri_in_a_sentence_is_masked():
    text = "The override 'a=https://u:pw1@h/x' and 'b=http://h/?api_key=pw2' cannot be read"
    assert redact_text(text) == "The override 'a=https://u:***@h/x' and 'b=http://h/?api_key=***' cannot be read"
