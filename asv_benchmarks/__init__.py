"""airspeed velocity benchmarks for cypool (see ``asv.conf.json`` at the repository root)."""
