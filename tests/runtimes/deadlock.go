// Prints ordinary log lines, then deadlocks: the runtime reports "fatal error:" with the
// goroutine dumps.
package main

import "fmt"

func main() {
	fmt.Println("2026/12/02 09:00:00 before the deadlock")
	done := make(chan int)
	go func() { <-done }()
	fmt.Println("2026/12/02 09:00:01 waiting")
	done2 := make(chan int)
	<-done2
}
