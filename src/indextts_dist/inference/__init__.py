"""Stage 3: consume a registered pattern model — generate codes and GPT latents, diagnose it."""
