"""Builds the optional compiled hot path (tickwire/net/_hot.pyx); everything else is in pyproject.toml.

If Cython, picows or a C compiler is missing, tickwire installs without it and runs the
pure-Python reference of the same code (tickwire.net.hot says which one is in use).
"""

from setuptools import Extension, setup


def _extensions() -> list[Extension]:
    try:
        import picows
        from Cython.Build import cythonize
    except ImportError:
        return []
    ext = Extension("tickwire.net._hot", ["tickwire/net/_hot.pyx"], optional=True,
                    define_macros=[("TICKWIRE_PICOWS_VERSION", f'"{picows.__version__}"')])
    return cythonize([ext], quiet=True, language_level=3)


setup(ext_modules=_extensions())
