"""Typer command-line interface: `main.py` wires one thin module per command."""
