"""Recorded runs: transcripts, the record a notebook embeds, finding recordings, replaying and
comparing them, and exporting a run as a notebook or Markdown."""
