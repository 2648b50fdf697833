"""The `kd` command line: a thin layer over `keras_diffusion`."""
