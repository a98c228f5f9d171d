"""The built-in plugins: thin hook implementations over the libraries (``node``, ``container``,
``gpu``, ``jobstart``). The engine loads them by name (``glidein_plugins.engine.registry``);
nothing else imports them."""
