"""Stage 3: consume a registered pattern model — generate codes and GPT latents, diagnose it.

Every door (`infer`, `generate`, `diagnose`, the pyfunc, the demo, the Python API) runs texts
through one object, `inference.loaded.LoadedModel`. Nothing is imported here, so that importing
one module of the stage does not pull the others in (and cannot close a circle).
"""
