"""The transfer-learning baselines of the paper's question: supervised pretraining over the meta-train classes (through the one training loop) and the test-time fine-tuning baselines."""
