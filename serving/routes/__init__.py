"""The API's routes, one small module per resource; :func:`serving.app.create_app`
includes their routers."""
