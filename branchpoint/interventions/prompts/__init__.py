"""Prompt templates of the DoVer pipeline, one `.md` file per prompt (`## system`, `## user`)."""
