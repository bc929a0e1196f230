"""branchpoint: run LLM multi-agent teams and debug their failures by intervention."""
