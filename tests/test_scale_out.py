"""Scale-out: MirroredStrategy over two logical CPU devices, and MLflow system metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ckrun import tracking

pytestmark = pytest.mark.slow

# Logical devices must be configured before TensorFlow initialises, hence a fresh process.
SCRIPT = textwrap.dedent(
    """
    import sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import json

    import keras

    from ckrun.config import load_config
    from ckrun.data.loader import prepare_for_config
    from ckrun.train import train

    seen = {"model_replicas": [], "steps": []}

    class Probe(keras.callbacks.Callback):  # looks inside the fit: the strategy, each replica's batch
        def on_train_begin(self, logs=None):
            seen["model_replicas"].append(self.model.distribute_strategy.num_replicas_in_sync)

        def set_model(self, model):  # fit hands over the model before it builds its train function
            super().set_model(model)
            if getattr(model, "_probed", False):
                return
            model._probed = True
            step = model.train_step

            def train_step(data):  # traced once per replica, inside the strategy's replica context
                images = tf.nest.flatten(data)[0]
                seen["steps"].append([tf.distribute.get_replica_context().num_replicas_in_sync, images.shape[0]])
                return step(data)

            model.train_step = train_step

    cfg = load_config(overrides=["preset=tiny", "epochs=2", "min_au_count=3", "strategy=mirrored", "log_model=false",
                                   "explain_images_per_class=0"])
    data = prepare_for_config(sys.argv[1], cfg, progress=False)
    result = train(cfg, data, experiment="scale", system_metrics=True, verbose=False, callbacks=[Probe()])
    print("RUN", result.run_id, len(tf.config.list_logical_devices("CPU")))
    print("PROBE", json.dumps({**seen, "batch_size": cfg.batch_size}))
    """
)


def test_mirrored_strategy_trains_on_two_logical_devices_with_system_metrics(
    mlflow_store: Path, tiny_ckplus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_ckplus)], capture_output=True, text=True, cwd=mlflow_store, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RUN "))
    _, run_id, devices = line.split()
    assert devices == "2"
    probe = json.loads(next(ln for ln in out.stdout.splitlines() if ln.startswith("PROBE "))[len("PROBE ") :])
    # Inside the fit: the model's strategy spans both devices, and each replica's step gets half a batch.
    assert probe["model_replicas"] == [2]
    assert probe["steps"] and all(step == [2, probe["batch_size"] // 2] for step in probe["steps"]), probe
    run = tracking.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["strategy"] == "mirrored"
    assert "test_emotion_f1" in run.data.metrics and "val_au_f1" in run.data.metrics
    assert any(key.startswith("system/cpu_utilization") for key in run.data.metrics), sorted(run.data.metrics)
