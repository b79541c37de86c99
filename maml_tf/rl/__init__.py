"""MAML for reinforcement learning: 2D navigation with policy-gradient inner steps and a TRPO meta-optimizer."""
