"""Preset plugin sets, installed with the package so `shoald --config NAME` finds them."""
