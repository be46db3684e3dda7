"""Workflow: the cached pipeline, profiles, the notebook set-up and the papermill runner."""
