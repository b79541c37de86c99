"""The benchmark of the real training step and the probes whose numbers results/ quotes."""
