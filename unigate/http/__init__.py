"""Thin endpoint handlers over the relay. The only package (with app.py) that imports Starlette."""
