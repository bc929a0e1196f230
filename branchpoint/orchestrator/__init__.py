"""Team orchestration: LangGraph graphs, runs, checkpoints, forks and replays."""
