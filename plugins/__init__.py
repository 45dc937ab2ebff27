"""Built-in plugins. Each registers through the ``shoal.plugins`` entry-point group, exactly as a
third-party plugin does; the package ``__init__`` of each is its light registration glue."""
