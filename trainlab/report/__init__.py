"""Plots and reports from run histories."""
