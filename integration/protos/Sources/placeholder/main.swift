print("plugins are built alongside")
