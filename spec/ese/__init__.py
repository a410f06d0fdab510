"""ESE's specification: its ISA table and machine configuration."""
