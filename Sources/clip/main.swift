print("clip")
