"""The CK+ data layer: import, synthetic data, split, tf.data pipeline, description."""
