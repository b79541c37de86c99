"""Builders of results/*.md (+ JSON, PNG) from run directories, sharing one writer."""
