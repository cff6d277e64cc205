"""Data: embedded-default generators, TFDS builders (array_record, no TensorFlow), batching."""
