"""Container inputs: the images dict, platforms and bind lists."""
