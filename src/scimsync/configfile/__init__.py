"""Configuration files (`scimsync apply -f`): read with positions, checked, compared, applied.

`marks` reads YAML keeping the line and column of every key and value; `envrefs`
decides where `${VAR}` may read the environment; `declared` checks a whole file and
reports every problem at its place; `changes` compares what a file declares with what
is stored, plans it (`--dry-run`) and applies it (docs/security.md: Configuration files).
"""
