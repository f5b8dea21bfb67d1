module github.com/duality-streams/duality

go 1.26
