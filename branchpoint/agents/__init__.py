"""Agents: teams, their Ray actor hosts, model backends, tools."""
