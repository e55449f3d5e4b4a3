"""Supervised and generative plug-ins (reward models, discriminators, taggers) for rlcourse envs."""
