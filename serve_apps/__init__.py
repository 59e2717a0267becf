"""Ray Serve applications, the code that builds their model artifacts and the parts they share."""
